import yargs, { type Argv, type Options } from 'yargs';
import { ConfigError, type ValueSource } from './errors.js';
import { OPTIONS, OPTION_KEYS, type OptionKey, type OptionSpec, type RawOptions } from './config/options.js';
import { parseOptions, resolveConfig, type RawInput } from './config/parse.js';
import { detectHost, type HostFacts } from './config/host.js';
import { buildPlan } from './build/plan.js';
import { renderJson, renderText } from './render/dryrun.js';
import { createLogger, type Logger } from './log.js';
import { existsSync, readFileSync } from 'node:fs';
import { ApplyError } from './errors.js';
import type { Config, CaptureConfig } from './config/config.js';
import type { OwnerId, Plan } from './model/rule.js';
import { ownerResolver } from './config/host.js';
import { processRunner, type Runner } from './apply/runner.js';
import { applyPlan } from './apply/apply.js';
import { quickBackend } from './apply/detect.js';
import { PROBE_CLIENT_COMMAND, probeClient, runProbe, selfCommand } from './apply/validate.js';

/** Read a /proc/net file; a missing one reads as empty (its module never loaded), unless /proc is absent. */
function readProcNet(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    // Only "no such file" means no legacy tables; unreadable (not root) means "don't know".
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/net/dev') ? '' : undefined;
  }
}

/** Bound on waiting for the xtables lock (legacy backend), in seconds. */
const LOCK_WAIT_SECONDS = 30;

function hasIpv4(c: CaptureConfig): boolean {
  return c.outboundCidrs.kind === 'all' || c.outboundCidrs.ipv4.length > 0 || c.inboundPorts.kind !== 'none' || !c.enableIpv6;
}

/** One line with the effective configuration, for the logs. */
function describeConfig(c: CaptureConfig): string {
  const ports = c.inboundPorts.kind === 'all' ? '*' : c.inboundPorts.kind === 'none' ? '(none)' : c.inboundPorts.ports.join(',');
  const cidrs = c.outboundCidrs.kind === 'all' ? '*' : [...c.outboundCidrs.ipv4, ...c.outboundCidrs.ipv6].map((x) => `${x.address}/${x.prefixLength}`).join(',') || '(none)';
  return [
    `mode=${c.mode}`,
    `proxy=${c.proxyPort}`,
    `inbound=${c.inboundCapturePort}`,
    `tunnel=${c.inboundTunnelPort}`,
    `uid=${c.proxyUids.join(',')}`,
    `gid=${c.proxyGids.join(',')}`,
    `inboundPorts=${ports}`,
    `outboundCidrs=${cidrs}`,
    `ipv6=${c.enableIpv6}`,
    `dns=${c.redirectDns ? (c.captureAllDns ? 'all' : [...c.dnsServers.ipv4, ...c.dnsServers.ipv6].join(',') || 'none') : 'off'}`,
  ].join(' ');
}

/** Run the probe inside another namespace: the same program, validation only, under `ip netns exec`. */
async function probeInNamespace(runner: Runner, log: Logger): Promise<{ ok: boolean; detail: string }> {
  const args: string[] = [];
  const given = process.argv.slice(2);
  for (let i = 0; i < given.length; i++) {
    const a = given[i] ?? '';
    if (a === '--network-namespace') i++;
    else if (!a.startsWith('--network-namespace=')) args.push(a);
  }
  const r = await runner.run([...selfCommand(), ...args, '--skip-rule-apply', '--run-validation']);
  if (r.stderr.trim() !== '') log.debug(r.stderr.trim());
  return { ok: r.exitCode === 0, detail: r.exitCode === 0 ? 'probe passed in the namespace' : `probe in the namespace exited ${r.exitCode}` };
}

/** The program name Istio's init-container args start with; accepted (and dropped) as a first word. */
export const PROGRAM = 'istio-iptables';

const GROUP_TITLES: Record<string, string> = {
  Ports: 'Proxy ports:',
  Capture: 'What is captured:',
  'Proxy identity': 'Proxy identity (never captured):',
  DNS: 'DNS capture:',
  TPROXY: 'TPROXY mode:',
  Run: 'Running:',
  Output: 'Output:',
};

function yargsOption(key: OptionKey): Options {
  const spec: OptionSpec = OPTIONS[key];
  const env = spec.env.length > 0 ? ` [env: ${spec.env.join(', ')}]` : '';
  const def = spec.default === undefined || spec.default === '' ? '' : ` [default: ${String(spec.default)}]`;
  return {
    type: spec.kind,
    ...('short' in spec ? { alias: spec.short } : {}),
    describe: `${spec.describe}${def}${env}`,
    group: GROUP_TITLES[spec.group] ?? spec.group,
    // No yargs defaults: absence must stay visible so env vars and derived defaults can apply.
  };
}

/** The yargs definition, as a factory so tests can run it in-process. */
export function createParser(args: readonly string[]): Argv {
  let parser = yargs([...args])
    .scriptName(PROGRAM)
    .usage(
      `Usage: ${PROGRAM} [flags]\n\n` +
        'Programs the pod network namespace so that the sidecar proxy sees all traffic: inbound TCP to\n' +
        'the inbound capture port, outbound TCP to the proxy port, with the exclusions below.\n' +
        'Flags beat environment variables; a later flag beats an earlier one.',
    )
    .parserConfiguration({
      'duplicate-arguments-array': false,
      'camel-case-expansion': false,
      'boolean-negation': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'strip-aliased': true,
    })
    .strict()
    .help('help')
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(120, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      const unknown = /^Unknown arguments?: (.*)$/.exec(msg);
      throw new ConfigError(undefined, undefined, unknown ? `unknown flag or argument: ${unknown[1]} (see --help)` : msg);
    });
  for (const key of OPTION_KEYS) parser = parser.option(OPTIONS[key].long, yargsOption(key));
  return parser;
}

const GO_TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const GO_BOOL = new Set([...GO_TRUE, '0', 'f', 'F', 'false', 'FALSE', 'False']);

function flagSource(key: OptionKey): ValueSource {
  const spec = OPTIONS[key];
  return { kind: 'flag', long: spec.long, ...('short' in spec ? { short: spec.short } : {}) };
}

/**
 * Rewrite arguments into the unambiguous `--long=value` form before yargs sees them, so that
 * they are read the way Istio's flag parser (pflag) reads them:
 * - a string flag takes the next argument as its value even when it starts with "-"
 *   (`-c -eth0`, `--probe-timeout -5s`); at the very end it is an error, not an empty value;
 * - a boolean flag never takes the next argument (`--redirect-dns true` leaves "true" as a stray
 *   argument), and `=value` takes only Go's boolean spellings.
 */
export function normalizeArgs(args: readonly string[]): string[] {
  const byName = new Map<string, OptionKey>();
  for (const key of OPTION_KEYS) {
    const spec = OPTIONS[key];
    byName.set(`--${spec.long}`, key);
    if ('short' in spec) byName.set(`-${spec.short}`, key);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const key = byName.get(name);
    if (key === undefined) {
      out.push(arg);
      continue;
    }
    const spec = OPTIONS[key];
    if (spec.kind === 'boolean') {
      const value = eq > 0 ? arg.slice(eq + 1) : 'true';
      if (!GO_BOOL.has(value)) throw new ConfigError(flagSource(key), value, 'true or false');
      // yargs reads only "true" as true: hand it the canonical spelling of Go's boolean.
      out.push(`--${spec.long}=${GO_TRUE.has(value)}`);
    } else if (eq > 0 || i + 1 < args.length) {
      const value = eq > 0 ? arg.slice(eq + 1) : (args[++i] ?? '');
      // yargs strips one pair of surrounding quotes from `--flag=value`: add a pair of our own
      // so that the value arrives exactly as given, quotes included.
      out.push(`--${spec.long}="${value}"`);
    } else {
      throw new ConfigError(undefined, undefined, `flag needs an argument: ${name === `--${spec.long}` ? name : `${name}/--${spec.long}`}`);
    }
  }
  return out;
}

/** Merge parsed flags and the environment into raw values with their sources. Flags win. */
export function collectRaw(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): RawInput {
  const values: Record<string, string | boolean> = {};
  const sources: Partial<Record<OptionKey, ValueSource>> = {};
  for (const key of OPTION_KEYS) {
    const spec = OPTIONS[key];
    const fromFlag = argv[spec.long];
    if (fromFlag !== undefined) {
      // A repeated flag keeps its last value (yargs may still hand back an array for some forms).
      const last = Array.isArray(fromFlag) ? fromFlag[fromFlag.length - 1] : fromFlag;
      values[key] = typeof last === 'boolean' ? last : String(last);
      sources[key] = flagSource(key);
      continue;
    }
    for (const name of spec.env) {
      const v = env[name];
      // As viper: an empty environment variable counts as unset.
      if (v !== undefined && v !== '') {
        values[key] = v;
        sources[key] = { kind: 'env', name };
        break;
      }
    }
  }
  return { values: values as RawOptions, sources };
}

/**
 * Read arguments and environment into raw values with their sources. A leading "istio-iptables"
 * (as in Istio's init-container args) is dropped. Returns 'help' when --help was answered.
 */
export async function rawFromArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  onHelp: (text: string) => void = () => {},
): Promise<RawInput | 'help'> {
  const rest = normalizeArgs(args[0] === PROGRAM ? args.slice(1) : args);
  let helpShown = false;
  const argv = (await createParser(rest).parseAsync(rest, {}, (err, _argv, output) => {
    if (output && !err) {
      helpShown = true;
      onHelp(`${output}\n`);
    }
  })) as Record<string, unknown>;
  if (helpShown) return 'help';
  return collectRaw(argv, env);
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
}

/** Run the CLI; returns the exit code (0 ok, 1 bad configuration or failure). */
export async function main(args: readonly string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? processIo;
  const env = options.env ?? process.env;
  let log: Logger = createLogger('info', io.stderr);
  try {
    const rest = args[0] === PROGRAM ? args.slice(1) : args;
    if (rest[0] === PROBE_CLIENT_COMMAND) {
      const [host = '', port = '0', token = '', deadline = '0'] = rest.slice(1);
      const ok = await probeClient(host, Number(port), token, Number(deadline));
      if (ok) io.stdout('ok');
      return ok ? 0 : 1;
    }
    const raw = await rawFromArgs(args, env, (text) => io.stdout(text));
    if (raw === 'help') return 0;
    const parsed = parseOptions(raw);
    log = createLogger(parsed.logOutputLevel, io.stderr);
    const host = options.host ?? detectHost(env, (m) => log.info(m));
    const config = resolveConfig(parsed, host, raw, (m) => log.warn(m));
    const plan = buildPlan(config.capture);
    for (const note of plan.notes) log.warn(note);
    if (config.run.dryRun) {
      io.stdout(config.run.output === 'json' ? renderJson(plan) : renderText(plan));
      return 0;
    }
    return await runForReal(config, plan, env, log);
    return 0;
  } catch (err) {
    io.stderr(`${PROGRAM}: ${errorMessage(err)}\n`);
    if (!(err instanceof ConfigError) && !(err instanceof ApplyError)) log.debug(err instanceof Error ? (err.stack ?? '') : '');
    return 1;
  }
}

/** Exit code when the validation probe fails, as Istio's. */
export const VALIDATION_FAILED = 126;

/** Apply (or clean up), then validate: the init container's real job. */
async function runForReal(config: Config, plan: Plan, env: NodeJS.ProcessEnv, log: Logger): Promise<number> {
  const { run, capture } = config;
  if (run.nativeNftables) {
    throw new ConfigError({ kind: 'flag', long: 'native-nftables' }, 'true', 'false: native nftables is not available in this version (use the iptables backends)');
  }
  const ns = run.networkNamespace;
  if (ns !== undefined && !existsSync(ns.startsWith('/') ? ns : `/var/run/netns/${ns}`)) {
    throw new ConfigError({ kind: 'flag', long: 'network-namespace' }, ns, 'an existing network namespace (a name under /var/run/netns or a path)');
  }
  log.info(`configuration: ${describeConfig(capture)}`);
  const runner = processRunner({ namespace: ns, env });
  const owners = ownerResolver();
  if (!run.skipRuleApply) {
    await applyPlan(plan, {
      runner,
      log,
      owners,
      forceBackend: run.forceIptablesBinary,
      reconcile: run.reconcile,
      forceApply: run.forceApply,
      cleanupOnly: run.cleanupOnly,
      lockWaitSeconds: LOCK_WAIT_SECONDS,
      quickBackend: quickBackend(run.forceIptablesBinary, ns === undefined, readProcNet),
    });
  }
  if (!run.runValidation || run.cleanupOnly) return 0;
  const resolve = (id: OwnerId, kind: 'uid' | 'gid'): number | undefined => (typeof id === 'number' ? id : kind === 'uid' ? owners.uid(id) : owners.gid(id));
  const uid = resolve(capture.proxyUids[0] ?? 1337, 'uid');
  const gid = resolve(capture.proxyGids[0] ?? uid ?? 1337, 'gid');
  if (uid === undefined || gid === undefined) throw new ApplyError('validation needs a numeric proxy uid/gid: the name could not be resolved', [], '');
  const result =
    ns === undefined
      ? await runProbe({
          family: capture.enableIpv6 && !hasIpv4(capture) ? 'ipv6' : 'ipv4',
          listenPorts: [capture.proxyPort, capture.inboundCapturePort],
          probePort: run.iptablesProbePort,
          timeoutMs: run.probeTimeoutMs,
          uid,
          gid,
        })
      : await probeInNamespace(runner, log);
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
