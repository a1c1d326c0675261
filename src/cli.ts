import { ApplyError, ConfigError, quoteValue } from './errors.js';
import { parseOptions, resolveConfig, type RawInput } from './config/parse.js';
import { detectHost, ownerResolver, type HostFacts } from './config/host.js';
import type { Config, CaptureConfig } from './config/config.js';
import { buildPlan } from './build/plan.js';
import type { OwnerId, Plan } from './model/rule.js';
import { createLogger, formatLogLine, type Logger } from './log.js';
import { configWarnings } from './config/warnings.js';
import { COMPLETION_COMMAND, COMPLETIONS_FLAG, completions, DIFF_COMMAND, PROGRAM, rawFromArgs, TRACE_COMMAND, withoutProgram, type ArgsReading, type HelpCommand } from './args.js';
import { existsSync } from 'node:fs';
import { LOCK_WAIT_SECONDS } from './apply/early.js';
import { otherBackendWarning, quickBackend, readProcNet } from './apply/detect.js';
import { namespaceFile, runDeadline } from './apply/commands.js';
import { PROBE_COMMAND, parseProbeArgs, probeArgs, type ProbeOptions, type ProbeResult } from './apply/probe.js';

// What only some runs need is loaded when needed: the dry-run renderers, trace, validation, and
// (for applying) the careful path's runner; yargs only for --help and errors (see args.ts).

export { PROGRAM } from './args.js';


/** Whether the pod's IPv4 traffic is captured at all (the probe uses IPv6 only when it is not). */
function hasIpv4(c: CaptureConfig): boolean {
  return c.outboundCidrs.kind === 'all' || c.outboundCidrs.ipv4.length > 0 || c.inboundPorts.kind !== 'none' || !c.enableIpv6;
}

/**
 * Run the probe inside another namespace: this program's probe subcommand in it (`ip netns exec`,
 * or `nsenter` for a path), given every parameter it needs; it reads no flag, environment
 * variable or namespace itself. Bounded by the probe's own timeout, plus time to start and end.
 */
async function probeInNamespace(ns: string, env: NodeJS.ProcessEnv, probe: ProbeOptions, log: Logger): Promise<ProbeResult> {
  const [{ selfCommand }, { processRunner }] = await Promise.all([import('./apply/validate.js'), import('./apply/runner.js')]);
  const runner = processRunner({ namespace: ns, env, timeoutMs: probe.timeoutMs + 10_000 });
  const r = await runner.run([...selfCommand(), PROBE_COMMAND, ...probeArgs(probe)]);
  if (r.stderr.trim() !== '') log.debug(r.stderr.trim());
  const detail = r.stdout.trim();
  if (r.exitCode === 0 || r.exitCode === VALIDATION_FAILED) return { ok: r.exitCode === 0, detail: detail || `probe in the namespace exited ${r.exitCode}` };
  return { ok: false, detail: `probe in the namespace exited ${r.exitCode}${r.stderr.trim() === '' ? '' : `: ${r.stderr.trim()}`}` };
}

/** Where log lines go, set once --log_target is read. */
interface LogSink {
  write: (text: string) => void;
}

export interface Io {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

export interface MainOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly io?: Io;
  /** Host facts; detected from the real host when absent. */
  readonly host?: HostFacts;
  /** What `trace --flows -` reads; process.stdin when absent. */
  readonly stdin?: () => Promise<string>;
  /** Called with the configuration before a dry run or any change to the host (may throw). */
  readonly beforeEffects?: (config: Config) => void;
  /** The command line already read into raw values (the entrypoint's prelude read it). */
  readonly rawInput?: RawInput;
}

/** Run the CLI; returns the exit code (0 ok, 1 bad configuration or failure). */
export async function main(args: readonly string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? processIo;
  const env = options.env ?? process.env;
  let log: Logger = createLogger('info', io.stderr);
  // Where log lines (and the error line) go: stderr until --log_target is read.
  const sink: LogSink = { write: io.stderr };
  // What the one reading of the command line found that the error line needs (filled in even when it fails).
  const reading: ArgsReading = { logAsJson: false };
  try {
    const rest = withoutProgram(args);
    if (rest[0] === PROBE_COMMAND) {
      // Only the probe, with the parameters given: the parent's parsed configuration.
      const probe = parseProbeArgs(rest.slice(1));
      const { runProbe } = await import('./apply/validate.js');
      const result = await runProbe(probe);
      io.stdout(`${result.detail}\n`);
      return result.ok ? 0 : VALIDATION_FAILED;
    }
    if (rest[0] === TRACE_COMMAND) return await runTrace(rest.slice(1), options, io, env, reading);
    if (rest[0] === DIFF_COMMAND) return await runDiff(rest.slice(1), options, io, env, reading);
    if (rest[0] === COMPLETION_COMMAND || rest[0] === COMPLETIONS_FLAG) {
      // yargs's: the bash completion script, or what it asks for (the words so far, as typed).
      io.stdout(await completions(rest));
      return 0;
    }
    const built = await planFromArgs(args, options, io, env, reading, { name: 'apply' }, options.rawInput, sink);
    if (built === 'help') return 0;
    const { config, plan } = built;
    log = built.log;
    options.beforeEffects?.(config);
    if (config.run.dryRun) {
      io.stdout(await renderDryRun(plan, config.run));
      return 0;
    }
    return await runForReal(config, plan, env, log);
  } catch (err) {
    // With --log_as_json the error is a JSON log line too (as the reading found it, even when a flag was bad).
    sink.write(reading.logAsJson ? formatLogLine('error', errorMessage(err), true) : `${PROGRAM}: ${errorMessage(err)}\n`);
    if (!(err instanceof ConfigError) && !(err instanceof ApplyError)) log.debug(err instanceof Error ? (err.stack ?? '') : '');
    return 1;
  }
}

/** The dry run as --output asks: text or JSON (--explain: with provenance), or the chain graph as a picture. */
async function renderDryRun(plan: Plan, run: Config['run']): Promise<string> {
  if (run.output === 'svg' || run.output === 'mermaid') {
    const { renderPlanMermaid, renderPlanSvg } = await import('./render/picture/index.js');
    return run.output === 'svg' ? renderPlanSvg(plan) : renderPlanMermaid(plan);
  }
  const { renderJson, renderText } = await import('./render/dryrun.js');
  const mode = { nft: run.nativeNftables, sets: run.nftSets, explain: run.explain };
  return run.output === 'json' ? renderJson(plan, mode) : renderText(plan, mode);
}

/**
 * Flags and environment to configuration and plan, logging as configured; 'help' when --help
 * (`command`'s) or --version was answered.
 */
async function planFromArgs(
  args: readonly string[],
  options: MainOptions,
  io: Io,
  env: NodeJS.ProcessEnv,
  reading: ArgsReading,
  command: HelpCommand,
  given?: RawInput,
  sink: LogSink = { write: io.stderr },
): Promise<{ config: Config; plan: Plan; log: Logger } | 'help'> {
  // Given: the command line was already read (by the entrypoint's prelude, or with a subcommand's own flags).
  if (given !== undefined) reading.logAsJson = given.values.logAsJson === true;
  const raw = given ?? (await rawFromArgs(args, env, io.stdout, reading, undefined, command));
  if (raw === 'help') return 'help';
  const parsed = parseOptions(raw);
  if (command.name === 'apply' && !parsed.dryRun && raw.values.output !== undefined) {
    // Fail closed: --output asks for a printout, and without a dry run there is none (the rules
    // would be applied, and stdout stay empty).
    throw new ConfigError(undefined, undefined, `--output ${parsed.output} needs --dry-run (-n): without it the rules are applied and nothing is printed`);
  }
  if (command.name === 'apply' && !parsed.dryRun && parsed.explain === true) {
    // Likewise --explain: it annotates a printout, and an apply prints none.
    throw new ConfigError(undefined, undefined, '--explain needs --dry-run (-n): without it the rules are applied and nothing is printed');
  }
  const targets = [...new Set(parsed.logTargets ?? ['stderr'])];
  sink.write = targets.length === 1 && targets[0] === 'stderr' ? io.stderr : (text) => targets.forEach((t) => (t === 'stdout' ? io.stdout : io.stderr)(text));
  const log = createLogger(parsed.logLevel, sink.write, { json: parsed.logAsJson });
  // As Istio: an environment variable it cannot parse is ignored (said here, once logging is set up).
  for (const i of raw.ignored ?? []) log.warn(`ignoring environment variable ${i.name}=${quoteValue(i.value)}: expected ${i.expected}`);
  const config = resolveConfig(parsed, options.host ?? detectHost(env, (m) => log.info(m)), raw, (m) => log.warn(m));
  const plan = buildPlan(config.capture);
  for (const note of plan.notes) log.warn(note);
  // Settings that do nothing, for a run that applies or prints the rules (trace and diff say what a flow or the namespace meets).
  if (command.name === 'apply') for (const w of configWarnings(config)) log.warn(w.message, { warning: w.code });
  return { config, plan, log };
}

const DIFF_USAGE = `Usage: ${PROGRAM} diff [flags]

Compares the rules and routes of a namespace (this one, or --network-namespace) with the plan the
flags describe, rule by rule: "-" the plan has it and the namespace does not, "+" the namespace has
it and the plan does not, "~" same rules in another order. Exit 0 when in sync, 1 otherwise.
Changes nothing.
`;

/** Fail with a clear error when --network-namespace names a namespace that does not exist. */
function checkNamespace(ns: string | undefined): void {
  if (ns !== undefined && !existsSync(namespaceFile(ns) ?? '')) {
    throw new ConfigError({ kind: 'flag', long: 'network-namespace' }, ns, 'an existing network namespace (a name under /var/run/netns or a path)');
  }
}

/** `diff [config flags]`: the live iptables rules and routes against the plan. */
async function runDiff(args: readonly string[], options: MainOptions, io: Io, env: NodeJS.ProcessEnv, reading: ArgsReading): Promise<number> {
  const built = await planFromArgs(args, options, io, env, reading, { name: 'diff', usage: DIFF_USAGE });
  if (built === 'help') return 0;
  const { config, plan } = built;
  if (config.run.nativeNftables) {
    throw new ConfigError({ kind: 'flag', long: 'native-nftables' }, 'true', 'false: diff compares iptables rules (for nftables, compare `nft list ruleset` with the dry run)');
  }
  checkNamespace(config.run.networkNamespace);
  const [{ diffPlan }, { processRunner, runtimeRoutes }, { renderDiff }] = await Promise.all([
    import('./apply/diff.js'),
    import('./apply/runner.js'),
    import('./render/diff.js'),
  ]);
  const ns = config.run.networkNamespace;
  const report = await diffPlan(plan, processRunner({ namespace: ns, env }), config.run.forceIptablesBinary, ownerResolver(), runtimeRoutes({ namespace: ns }));
  io.stdout(renderDiff(report));
  return report.inSync ? 0 : 1;
}

/**
 * `trace [config flags] FLOW | --flows FILE`: the plan exactly as a dry run builds it, then each
 * flow walked through it offline. Never applies anything, needs no root.
 */
async function runTrace(args: readonly string[], options: MainOptions, io: Io, env: NodeJS.ProcessEnv, reading: ArgsReading): Promise<number> {
  const { runTraceCommand, traceArgsReader, TRACE_USAGE } = await import('./trace/index.js');
  const { readFile } = await import('node:fs/promises');
  // One walk: the configuration flags, and trace's own flags and flow words beside them.
  const reader = traceArgsReader();
  const raw = await rawFromArgs(args, env, io.stdout, reading, reader.own, { name: 'trace', usage: TRACE_USAGE });
  if (raw === 'help') return 0;
  const trace = reader.args();
  const built = await planFromArgs(args, options, io, env, reading, { name: 'trace', usage: TRACE_USAGE }, raw);
  if (built === 'help') return 0;
  const { config, plan } = built;
  const file = trace.flowsFile;
  let flows: string | undefined;
  try {
    flows = file === undefined ? undefined : file === '-' ? await (options.stdin ?? readStdin)() : await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read --flows ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const out = runTraceCommand(plan, trace, flows, config.run.output);
  io.stdout(out.stdout);
  // A bad --flows line or an unmet --expect: each on its own line, as any error; exit 1.
  for (const e of out.errors) io.stderr(reading.logAsJson ? formatLogLine('error', e, true) : `${PROGRAM}: ${e}\n`);
  return out.errors.length > 0 ? 1 : 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Exit code when the validation probe fails, as Istio's. */
export const VALIDATION_FAILED = 126;

/** Apply (or clean up), then validate: the init container's real job. */
async function runForReal(config: Config, plan: Plan, env: NodeJS.ProcessEnv, log: Logger): Promise<number> {
  const { run, capture } = config;
  const ns = run.networkNamespace;
  checkNamespace(ns);
  // The blocks an apply logs (loaded with the apply: a dry run needs none of them).
  const { logConfiguration, logRulesAfter } = await import('./log-blocks.js');
  logConfiguration(log, config);
  // One deadline for the run's changes: every command, lock wait and retry within it; past it,
  // what the run changed is undone and it exits 1 (the validation after has its own bound).
  const deadline = runDeadline(run.runTimeoutMs);
  const [{ applyPlan }, { processRunner, spawnRunner, runtimeRoutes }] = await Promise.all([import('./apply/apply.js'), import('./apply/runner.js')]);
  const runner = processRunner({ namespace: ns, env, deadline });
  const routes = runtimeRoutes({ namespace: ns });
  const owners = ownerResolver();
  try {
    if (!run.skipRuleApply && run.nativeNftables) {
      const { applyNft } = await import('./apply/nft.js');
      await applyNft(plan, { runner, log, reconcile: run.reconcile, cleanupOnly: run.cleanupOnly, sets: run.nftSets, routes, deadline });
      await logRulesAfter(log, runner, { kind: 'nftables' });
    } else if (!run.skipRuleApply) {
      if (run.forceIptablesBinary !== undefined) {
        const mixed = await otherBackendWarning(runner, run.forceIptablesBinary);
        if (mixed !== undefined) log.warn(mixed, { warning: 'other-backend-has-rules' });
      }
      const report = await applyPlan(plan, {
        runner,
        log,
        owners,
        forceBackend: run.forceIptablesBinary,
        reconcile: run.reconcile,
        forceApply: run.forceApply,
        cleanupOnly: run.cleanupOnly,
        lockWaitSeconds: LOCK_WAIT_SECONDS,
        quickBackend: quickBackend(run.forceIptablesBinary, ns === undefined, readProcNet),
        fastRunner: spawnRunner({ namespace: ns, env, deadline }),
        routes,
        deadline,
      });
      const families = (['ipv4', 'ipv6'] as const).filter((f) => report.families[f] !== undefined);
      await logRulesAfter(log, runner, { kind: 'iptables', save: report.backend.save, families });
    }
  } catch (err) {
    if (!deadline.passed()) throw err;
    // What was rolled back, or could not be, the rollback has logged already.
    throw new ApplyError(`the run did not finish within its deadline (--run-timeout ${run.runTimeoutMs / 1000}s) and stopped: ${errorMessage(err)}`, [], '', { cause: err });
  }
  if (!run.runValidation || run.cleanupOnly) return 0;
  const resolve = (id: OwnerId, kind: 'uid' | 'gid'): number | undefined => (typeof id === 'number' ? id : kind === 'uid' ? owners.uid(id) : owners.gid(id));
  const uid = resolve(capture.proxyUids[0] ?? 1337, 'uid');
  const gid = resolve(capture.proxyGids[0] ?? uid ?? 1337, 'gid');
  if (uid === undefined || gid === undefined) throw new ApplyError('validation needs a numeric proxy uid/gid: the name could not be resolved', [], '');
  const probe: ProbeOptions = {
    family: capture.enableIpv6 && !hasIpv4(capture) ? 'ipv6' : 'ipv4',
    listenPorts: [capture.proxyPort, capture.inboundCapturePort],
    probePort: run.iptablesProbePort,
    timeoutMs: run.probeTimeoutMs,
    uid,
    gid,
  };
  const result = ns === undefined ? await (await import('./apply/validate.js')).runProbe(probe) : await probeInNamespace(ns, env, probe, log);
  if (result.ok) {
    log.info(`validation passed: ${result.detail}`);
    return 0;
  }
  log.error(`iptables validation failed; workload is not ready for Istio: ${result.detail}`);
  return VALIDATION_FAILED;
}

function errorMessage(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  if (err instanceof Error) {
    return err.message.replace(/\s*\n\s*/g, '; ');
  }
  return String(err);
}
