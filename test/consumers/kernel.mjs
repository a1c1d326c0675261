// A tool acting on a network namespace through the installed package:
//   node kernel.mjs apply|cleanup|diff NAMESPACE RUNNER ISTIO-ARGS...
// RUNNER: "default" (the package's own), or "recording" (ours, through child_process; each argv
// is reported). Prints one JSON object: the report, the commands run, the log lines.
import { spawn } from 'node:child_process';
import { apply, applyOptionsFrom, buildPlan, cleanup, configFromArgs, diff, renderDiff } from 'istio-iptables-ts';

const [action, namespace, runnerKind, ...args] = process.argv.slice(2);
const commands = [];
const log = [];
const recording = (argv, stdin) =>
  new Promise((resolve) => {
    commands.push(argv);
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
const options = { ...applyOptionsFrom(config.run), namespace, logger, ...(runnerKind === 'recording' ? { runner: recording } : {}) };
let report;
let text;
if (action === 'apply') report = await apply(plan, options);
else if (action === 'cleanup') report = await cleanup(plan, options);
else {
  report = await diff(plan, options);
  text = renderDiff(report);
}
process.stdout.write(JSON.stringify({ report, text, commands, log }));
