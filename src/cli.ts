import { ApplyError, ConfigError, quoteValue } from './errors.js';
import { parseOptions, resolveConfig, type ParsedOptions, type RawInput } from './config/parse.js';
import { detectHost, ownerResolver, type HostFacts } from './config/host.js';
import type { Config, CaptureConfig } from './config/config.js';
import { buildPlan } from './build/plan.js';
import type { OwnerId, Plan } from './model/rule.js';
import { createLogger, formatLogLine, type Logger } from './log.js';
import { configWarnings } from './config/warnings.js';
import { COMPLETION_COMMAND, COMPLETIONS_FLAG, completions, DIFF_COMMAND, PROGRAM, rawFromArgs, TRACE_COMMAND, withoutProgram, type ArgsReading, type HelpCommand } from './args.js';
import { PROBE_COMMAND, PROBE_FAILED, parseProbeArgs, type ProbeOptions } from './apply/probe.js';
import { monotonicMs } from './apply/commands.js';
import type { NamespaceTarget } from './api/namespace.js';
// The door, the platform and the apply's log blocks, loaded when a run first needs them (api/door.ts).
import { loadDoor } from './api/door.js';

// The CLI parses, prints and maps errors to exit codes; every read or change of a namespace goes
// through the one door (api/namespace.ts). What only some runs need is loaded when needed: the
// dry-run renderers, trace, diff; yargs only for --help and errors (see args.ts).

export { PROGRAM } from './args.js';


/** Whether the pod's IPv4 traffic is captured at all (the probe uses IPv6 only when it is not). */
function hasIpv4(c: CaptureConfig): boolean {
  return c.outboundCidrs.kind === 'all' || c.outboundCidrs.ipv4.length > 0 || c.inboundPorts.kind !== 'none' || !c.enableIpv6;
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

/** Run the CLI; returns the exit code (0 ok, 1 bad configuration or failure, 126 failed validation; diff: 0 in sync, 1 drift, 2 error). */
export async function main(args: readonly string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? processIo;
  const env = options.env ?? process.env;
  let log: Logger = createLogger('info', io.stderr);
  // Where log lines (and the error line) go: stderr until --log_target is read.
  const sink: LogSink = { write: io.stderr };
  // What the one reading of the command line found that the error line needs (filled in even when it fails).
  const reading: ArgsReading = { logAsJson: false };
  const rest = withoutProgram(args);
  // The namespace a run reads or changes, opened once; closed whatever happens.
  let target: NamespaceTarget | undefined;
  try {
    if (rest[0] === PROBE_COMMAND) {
      // Only the probe, with the parameters given: the parent's parsed configuration.
      const result = await (await loadDoor()).platform.runProbe(parseProbeArgs(rest.slice(1)));
      io.stdout(`${result.detail}\n`);
      return result.ok ? 0 : VALIDATION_FAILED;
    }
    if (rest[0] === TRACE_COMMAND) return await runTrace(rest.slice(1), options, io, env, reading);
    if (rest[0] === COMPLETION_COMMAND || rest[0] === COMPLETIONS_FLAG) {
      // yargs's: the bash completion script, or what it asks for (the words so far, as typed).
      io.stdout(await completions(rest));
      return 0;
    }
    const diffing = rest[0] === DIFF_COMMAND;
    const command: HelpCommand = diffing ? { name: 'diff', usage: DIFF_USAGE } : { name: 'apply' };
    const read = await readArgs(diffing ? rest.slice(1) : args, io, env, reading, command, diffing ? undefined : options.rawInput, sink);
    if (read === 'help') return 0;
    log = read.log;
    // A dry run reads the namespace only for the facts no flag gives (IPv6 from its addresses, lo's IPv6).
    const dryRun = !diffing && read.parsed.dryRun;
    if (!dryRun || read.parsed.enableIpv6 !== false) target = await openTarget(read.parsed, env, log);
    const host = options.host ?? (target === undefined ? detectHost(env, (m) => log.info(m)) : await hostOf(target, read.parsed, env));
    const { config, plan } = configure(read, host, log, !diffing);
    options.beforeEffects?.(config);
    if (dryRun) {
      io.stdout(await renderDryRun(plan, config.run));
      return 0;
    }
    if (target === undefined) throw new Error('internal error: no namespace opened for a run that changes or reads one');
    if (diffing) return await runDiff(config, plan, target, io);
    return await runForReal(config, plan, target, log);
  } catch (err) {
    // With --log_as_json the error is a JSON log line too (as the reading found it, even when a flag was bad).
    sink.write(reading.logAsJson ? formatLogLine('error', errorMessage(err), true) : `${PROGRAM}: ${errorMessage(err)}\n`);
    if (!(err instanceof ConfigError) && !(err instanceof ApplyError)) log.debug(err instanceof Error ? (err.stack ?? '') : '');
    // diff: 2 for any error (bad flags, a missing namespace, a save that failed), so 1 means drift only.
    return rest[0] === DIFF_COMMAND ? DIFF_ERROR : 1;
  } finally {
    target?.close();
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

/** The command line read and validated, logging set up as it says; 'help' when --help (`command`'s) or --version was answered. */
interface Read {
  readonly raw: RawInput;
  readonly parsed: ParsedOptions;
  readonly log: Logger;
}

async function readArgs(
  args: readonly string[],
  io: Io,
  env: NodeJS.ProcessEnv,
  reading: ArgsReading,
  command: HelpCommand,
  given?: RawInput,
  sink: LogSink = { write: io.stderr },
): Promise<Read | 'help'> {
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
  return { raw, parsed, log };
}

/** The namespace of --network-namespace (or this one), opened through the door; a bad one names the flag. */
async function openTarget(parsed: ParsedOptions, env: NodeJS.ProcessEnv, log: Logger): Promise<NamespaceTarget> {
  try {
    return await (await loadDoor()).openNamespace({ networkNamespace: parsed.networkNamespace, env, logger: log });
  } catch (err) {
    if (err instanceof ConfigError && err.source?.kind === 'option') throw new ConfigError({ kind: 'flag', long: 'network-namespace' }, err.value, err.expected);
    throw err;
  }
}

/**
 * The host facts a run needs, read in the target namespace: its addresses only when
 * --enable-ipv6 is not given, lo's IPv6 only when IPv6 is on; the proxy uid and DNS servers from
 * this process's files.
 */
async function hostOf(target: NamespaceTarget, parsed: ParsedOptions, env: NodeJS.ProcessEnv): Promise<HostFacts> {
  const addresses = parsed.enableIpv6 === undefined;
  const ipv6 = parsed.enableIpv6 ?? (await target.ipv6(parsed.dualStack)).value;
  return target.hostFacts({ env, read: { addresses, loopback: ipv6 } });
}

/** Configuration and plan from what was read and the host facts. */
function configure(read: Read, host: HostFacts, log: Logger, applying = false): { config: Config; plan: Plan } {
  const config = resolveConfig(read.parsed, host, read.raw, (m) => log.warn(m));
  const plan = buildPlan(config.capture);
  for (const note of plan.notes) log.warn(note);
  // Settings that do nothing, for a run that applies or prints the rules (trace and diff say what a flow or the namespace meets).
  if (applying) for (const w of configWarnings(config)) log.warn(w.message, { warning: w.code });
  return { config, plan };
}

const DIFF_USAGE = `Usage: ${PROGRAM} diff [flags]

Compares the rules and routes of a namespace (this one, or --network-namespace) with the plan the
flags describe, rule by rule: "-" the plan has it and the namespace does not, "+" the namespace
has it and the plan does not (extra rules in our chains, our jumps and marks in built-in chains,
routing a run of ours adds), "~" same rules in another order. --output json prints the same as
one JSON object. Exit 0 when in sync, 1 on drift, 2 on an error (bad flags, a namespace that does
not exist, a save that failed). Changes nothing.
`;

/** diff's exit code for an error, apart from drift's 1. */
export const DIFF_ERROR = 2;

/** `diff [config flags]`: the live iptables rules and routes against the plan. */
async function runDiff(config: Config, plan: Plan, target: NamespaceTarget, io: Io): Promise<number> {
  if (config.run.nativeNftables) {
    throw new ConfigError({ kind: 'flag', long: 'native-nftables' }, 'true', 'false: diff compares iptables rules (for nftables, compare `nft list ruleset` with the dry run)');
  }
  const report = await target.diff(plan, { forceIptablesBinary: config.run.forceIptablesBinary });
  const { renderDiff, renderDiffJson } = await import('./render/diff.js');
  io.stdout(config.run.output === 'json' ? renderDiffJson(report) : renderDiff(report));
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
  const read = await readArgs(args, io, env, reading, { name: 'trace', usage: TRACE_USAGE }, raw);
  if (read === 'help') return 0;
  // Offline: the host's facts, never a namespace's.
  const { config, plan } = configure(read, options.host ?? detectHost(env, (m) => read.log.info(m)), read.log);
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
export const VALIDATION_FAILED = PROBE_FAILED;

/** Apply (or clean up), then validate: the init container's real job. */
async function runForReal(config: Config, plan: Plan, target: NamespaceTarget, log: Logger): Promise<number> {
  const { run, capture } = config;
  // The configuration block an apply logs; the door logs what it loads and the rules after.
  (await loadDoor()).logConfiguration(log, config);
  if (!run.skipRuleApply) {
    // One deadline for the run's changes (--run-timeout): every command, lock wait and retry
    // within it; past it, what the run changed is undone and it exits 1 (the validation after has
    // its own bound). The door measures it from the call; so does this, from just before.
    const since = monotonicMs();
    const settings = { forceIptablesBinary: run.forceIptablesBinary, nativeNftables: run.nativeNftables, runTimeoutMs: run.runTimeoutMs };
    try {
      if (run.cleanupOnly) await target.cleanup(plan, settings);
      else await target.apply(plan, { ...settings, nftSets: run.nftSets, reconcile: run.reconcile, forceApply: run.forceApply });
    } catch (err) {
      if (monotonicMs() - since < run.runTimeoutMs) throw err;
      // What was rolled back, or could not be, the rollback has logged already.
      throw new ApplyError(`the run did not finish within its deadline (--run-timeout ${run.runTimeoutMs / 1000}s) and stopped: ${errorMessage(err)}`, [], '', { cause: err });
    }
  }
  if (!run.runValidation || run.cleanupOnly) return 0;
  const owners = ownerResolver();
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
  const result = await target.probe(probe);
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
