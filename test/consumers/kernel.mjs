// A tool acting on a network namespace through the installed package:
//   node kernel.mjs apply|cleanup|diff NAMESPACE RUNNER ISTIO-ARGS...
// RUNNER: "default" (the package's own), "recording" (ours, through child_process; each argv is
// reported), or "fail:WORD" (recording, but a command whose program contains WORD exits 2 at
// once without reading its input, as a program failing at start-up does). Prints one JSON
// object: the report (or the error thrown), the commands run, the log lines.
import { spawn } from 'node:child_process';
import { ApplyError, apply, applyOptionsFrom, buildPlan, cleanup, configFromArgs, diff, renderDiff } from 'istio-iptables-ts';

const [action, namespace, runnerKind, ...args] = process.argv.slice(2);
const commands = [];
const log = [];
const failing = runnerKind.startsWith('fail:') ? runnerKind.slice(5) : undefined;
const recording = (argv, stdin) =>
  new Promise((resolve) => {
    commands.push(argv);
    if (failing !== undefined && argv.slice(4).some((a) => a.includes(failing))) return resolve({ exitCode: 2, stdout: '', stderr: `${failing}: injected failure` });
    const child = spawn(argv[0], argv.slice(1), { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', (err) => resolve({ exitCode: err.code === 'ENOENT' ? 127 : -1, stdout, stderr: `${stderr}${err.message}` }));
    child.on('close', (code) => resolve({ exitCode: code ?? -1, stdout, stderr }));
    if (stdin !== undefined) child.stdin.end(stdin);
  });
const logger = { error: (m) => log.push(`error ${m}`), warn: (m) => log.push(`warn ${m}`), info: (m) => log.push(`info ${m}`), debug: () => {} };

const config = await configFromArgs(args, process.env);
const plan = buildPlan(config.capture);
// Never this process's own namespace: a tool that meant a namespace and named none would program the host.
if (!namespace) throw new Error('kernel.mjs: a namespace is required');
const options = { ...applyOptionsFrom(config.run), networkNamespace: namespace, logger, ...(runnerKind === 'default' ? {} : { runner: recording }) };
let report;
let text;
let error;
try {
  if (action === 'apply') report = await apply(plan, options);
  else if (action === 'cleanup') report = await cleanup(plan, options);
  else {
    report = await diff(plan, options);
    text = renderDiff(report);
  }
} catch (err) {
  error = { name: err.name, message: err.message, command: err.command, isApplyError: err instanceof ApplyError };
}
process.stdout.write(JSON.stringify({ report, text, error, commands, log }));
