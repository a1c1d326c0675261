import { ConfigError, type ValueSource } from './errors.js';
import { OPTIONS, OPTION_KEYS, type OptionKey, type OptionSpec, type RawOptions } from './config/options.js';
import { GO_FALSE, GO_TRUE } from './config/gobool.js';
import type { IgnoredEnv, RawInput } from './config/parse.js';

/**
 * Reading the command line as Istio's flag parser (pflag) reads it, into raw values with where
 * each came from, all driven by the option table:
 * - rawFromArgs: yargs (parser.ts, generated from the table) parses the command line and answers
 *   --help; the arguments are first cut as pflag cuts them (which argument is whose value:
 *   normalizeArgs), since pflag and yargs differ there (`-c -eth0`, `-ceth0`, `--redirect-dns true`).
 * - quickRaw: the init container's hot path (the entrypoint's prelude) reads the same cut without
 *   yargs, which would cost that runtime ~60 M instructions per run (a dry run is ~7 M without it,
 *   measured with callgrind); anything but our flags goes to rawFromArgs. Both walk the arguments
 *   with walkArgs and merge the environment with collectRaw.
 * The command line is read once per run: what else a run needs from it (the error line's format,
 * trace's own flags and flow words) comes out of that one walk (ArgsReading, OwnArgs). The one
 * exception is the entrypoint: when quickRaw gives up (--help, an unknown flag: undefined; a bad
 * value: it throws) the prelude has produced nothing, and the run reads the command line with
 * rawFromArgs, then the only reading whose result is used.
 */

/** The program name Istio's init-container args start with; accepted (and dropped) as a first word. */
export const PROGRAM = 'istio-iptables';

/** The trace subcommand: `istio-iptables trace [flags] FLOW`. */
export const TRACE_COMMAND = 'trace';

/** The diff subcommand: `istio-iptables diff [flags]` compares a namespace with the plan. */
export const DIFF_COMMAND = 'diff';

/** The hidden command the validation probe's client runs as when it must change uid. */
export const PROBE_CLIENT_COMMAND = '__probe-client';


/** Our flags by the names they are given as (`--long`, `-s`). */
const BY_NAME = new Map<string, OptionKey>();
for (const key of OPTION_KEYS) {
  const spec: { readonly long: string; readonly short?: string } = OPTIONS[key];
  BY_NAME.set(`--${spec.long}`, key);
  if (spec.short !== undefined) BY_NAME.set(`-${spec.short}`, key);
}

/** The option a flag name (`--long` or `-s`, without a value) stands for; undefined when none. */
export function flagKey(name: string): OptionKey | undefined {
  return BY_NAME.get(name);
}

/** The arguments without the leading program name Istio's init-container args start with. */
export function withoutProgram(args: readonly string[]): readonly string[] {
  return args[0] === PROGRAM ? args.slice(1) : args;
}

export function flagSource(key: OptionKey): ValueSource {
  const spec: { readonly long: string; readonly short?: string } = OPTIONS[key];
  return spec.short === undefined ? { kind: 'flag', long: spec.long } : { kind: 'flag', long: spec.long, short: spec.short };
}

/**
 * Walk arguments the way pflag reads them, handing each flag of ours with its value to `flag`
 * and everything else (an unknown flag, a stray word, `--` and all after it) to `other`:
 * - a string flag takes the next argument as its value even when it starts with "-"
 *   (`-c -eth0`, `--probe-timeout -5s`); at the very end it is an error, not an empty value;
 * - a boolean flag never takes the next argument (`--redirect-dns true` leaves "true" as a stray
 *   argument), and `=value` takes only Go's boolean spellings.
 */
function walkArgs(
  args: readonly string[],
  flag: (key: OptionKey, value: string | boolean) => void,
  other: (args: readonly string[]) => void,
  bad: (err: ConfigError) => void = (err) => {
    throw err;
  },
  own?: OwnArgs,
): void {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--' && own === undefined) {
      other(args.slice(i));
      return;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const key = BY_NAME.get(name);
    if (key === undefined) {
      if (own === undefined) other([arg]);
      else if (own.names.includes(name)) own.flag(name, eq > 0 ? arg.slice(eq + 1) : i + 1 < args.length ? args[++i] : undefined);
      else if (own.switches?.includes(name) === true) own.flag(name, eq > 0 ? arg.slice(eq + 1) : 'true');
      else if (arg.startsWith('-') && arg !== '->') other([arg]);
      else own.word(arg);
      continue;
    }
    const spec = OPTIONS[key];
    if (spec.kind === 'boolean') {
      const value = eq > 0 ? arg.slice(eq + 1) : 'true';
      if (GO_TRUE.has(value) || GO_FALSE.has(value)) flag(key, GO_TRUE.has(value));
      else bad(new ConfigError(flagSource(key), value, 'true or false'));
    } else if (eq > 0 || i + 1 < args.length) {
      flag(key, eq > 0 ? arg.slice(eq + 1) : (args[++i] ?? ''));
    } else {
      bad(new ConfigError(undefined, undefined, `flag needs an argument: ${name === `--${spec.long}` ? name : `${name}/--${spec.long}`}`));
    }
  }
}

/**
 * What the one reading of a command line found besides the raw values, filled in as it reads, so
 * that an error in the reading (a bad flag) or after it (validation) still has it: no second walk.
 */
export interface ArgsReading {
  /**
   * Whether the arguments ask for JSON logs: the last --log_as_json, read past a bad flag, so
   * that the error about that flag is a JSON line too.
   */
  logAsJson: boolean;
}

/**
 * A subcommand's own flags and words, taken out of its arguments in the same walk that reads our
 * flags (trace: --flows FILE, the flow's words). `--` is then an argument like any other.
 */
export interface OwnArgs {
  /** The subcommand's flags (`--name`), each taking a value (`--name=value` or the next argument). */
  readonly names: readonly string[];
  /** Its switches (`--name`, `--name=false`): never take the next argument; `flag` gets "true" or the value. */
  readonly switches?: readonly string[];
  /** One of them with its value; undefined when it is the last argument, without a value. */
  readonly flag: (name: string, value: string | undefined) => void;
  /** An argument that is none of our flags and does not start with "-" (but "->"). */
  readonly word: (arg: string) => void;
}

/**
 * Rewrite arguments into the unambiguous `--long=value` form for yargs, read as walkArgs reads
 * them. String values are wrapped in quotes of our own: yargs strips one pair from
 * `--flag=value`, so the value arrives exactly as given, quotes included.
 */
export function normalizeArgs(args: readonly string[], reading: ArgsReading = { logAsJson: false }, own?: OwnArgs): string[] {
  const out: string[] = [];
  // The first bad flag is the error; the walk goes on to the end so that `reading` is complete.
  let first: ConfigError | undefined;
  walkArgs(
    args,
    (key, value) => {
      if (key === 'logAsJson') reading.logAsJson = value === true;
      out.push(typeof value === 'boolean' ? `--${OPTIONS[key].long}=${value}` : `--${OPTIONS[key].long}="${value}"`);
    },
    (rest) => out.push(...rest),
    (err) => {
      first ??= err;
    },
    own,
  );
  if (first !== undefined) throw first;
  return out;
}

/** Merge flag values (by long name) and the environment into raw values with their sources. Flags win. */
export function collectRaw(argv: Readonly<Record<string, unknown>>, env: NodeJS.ProcessEnv): RawInput {
  const values: Record<string, string | boolean | readonly string[]> = {};
  const sources: Partial<Record<OptionKey, ValueSource>> = {};
  let ignored: IgnoredEnv[] | undefined;
  for (const key of OPTION_KEYS) {
    const spec: OptionSpec = OPTIONS[key];
    const fromFlag = argv[spec.long];
    if (fromFlag !== undefined) {
      if (spec.kind === 'strings') {
        // Every value of a repeatable flag, in order.
        values[key] = (Array.isArray(fromFlag) ? fromFlag : [fromFlag]).map(String);
      } else {
        // A repeated flag keeps its last value.
        const last = Array.isArray(fromFlag) ? fromFlag[fromFlag.length - 1] : fromFlag;
        values[key] = typeof last === 'boolean' ? last : String(last);
      }
      sources[key] = flagSource(key);
      continue;
    }
    for (const name of spec.env) {
      const v = env[name];
      // As viper: an empty environment variable counts as unset.
      if (v === undefined || v === '') continue;
      const expected = unreadableEnv(spec, name, v);
      if (expected !== undefined) {
        // As Istio: a variable it cannot parse leaves the option as it was (the next variable, or
        // the default). Said in a warning once logging is set up.
        (ignored ??= []).push({ name, value: v, expected });
        continue;
      }
      values[key] = v;
      sources[key] = { kind: 'env', name };
      break;
    }
  }
  return ignored === undefined ? { values: values as RawOptions, sources } : { values: values as RawOptions, sources, ignored };
}

/*
 * The patterns below are written inside the functions: only a variable that is set builds one
 * (the entrypoint's interpreter pays for each regular expression it creates at start-up).
 */

/** What Go's strconv.ParseUint(s, 0, 16) accepts (pflag's uint16). */
function goUint16(text: string): boolean {
  if (!/^(?:0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)$/.test(text)) return false;
  return goUint(text) <= 65535;
}

function goUint(text: string): number {
  const t = text.replaceAll('_', '');
  const base = /^0[xX]/.test(t) ? 16 : /^0[bB]/.test(t) ? 2 : /^0[oO]/.test(t) ? 8 : /^0[0-7]/.test(t) ? 8 : 10;
  return parseInt(base === 10 || /^0[0-7]/.test(t) ? t : t.slice(2), base);
}

/**
 * Why Istio would ignore this environment variable's value (what it expected), or undefined when
 * it reads it. Istio sets a flag from its variable and drops the parse error, so a boolean, port
 * or duration it cannot parse leaves the default in force; a Kubernetes service link in a `*_PORT`
 * variable is treated the same here (Istio would take it as the port's text and fail later).
 * Values Istio parses but we reject still fail validation.
 */
function unreadableEnv(spec: OptionSpec, name: string, value: string): string | undefined {
  // A Kubernetes service link: `<SERVICE>_PORT=tcp://10.0.0.1:80`, one per Service in the namespace.
  if (value.includes('://') && name.endsWith('_PORT') && /^(?:tcp|udp|sctp):\/\/\S*:[0-9]+$/.test(value)) return 'a port (this is a Kubernetes service link)';
  if (spec.kind === 'boolean') return GO_TRUE.has(value) || GO_FALSE.has(value) ? undefined : 'true or false';
  if (spec.envParse === 'uint16') return goUint16(value) ? undefined : 'a port 0-65535';
  // What Go's time.ParseDuration accepts (pflag's Duration).
  if (spec.envParse === 'duration') return /^[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$/.test(value) ? undefined : 'a duration such as 5s';
  return undefined;
}

/**
 * Arguments (a leading "istio-iptables" dropped) and environment read into raw values without
 * yargs, in one walk; undefined when an argument is not one of our flags (--help, an unknown
 * flag, a stray word), which yargs then answers. Throws ConfigError for a flag given a bad
 * boolean or missing its value.
 */
export function quickRaw(args: readonly string[], env: NodeJS.ProcessEnv): RawInput | undefined {
  const argv: Record<string, string | boolean | string[]> = {};
  let ours = true;
  walkArgs(
    withoutProgram(args),
    (key, value) => {
      const long = OPTIONS[key].long;
      const before = argv[long];
      // A repeatable flag keeps every value; any other repeated flag its last (as yargs, given our normalized form).
      if (OPTIONS[key].kind === 'strings') argv[long] = Array.isArray(before) ? [...before, String(value)] : [String(value)];
      else argv[long] = value;
    },
    () => {
      ours = false;
    },
  );
  return ours ? collectRaw(argv, env) : undefined;
}

/**
 * Read arguments and environment into raw values with their sources, through yargs. A leading
 * "istio-iptables" (as in Istio's init-container args) is dropped. Returns 'help' when --help was
 * answered. The arguments are walked once: `reading` gets what the caller needs even when this
 * throws (whether the error line is JSON), and `own` a subcommand's flags and words (its
 * arguments are then taken as they are, with no program name to drop).
 */
export async function rawFromArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  onHelp: (text: string) => void = () => {},
  reading?: ArgsReading,
  own?: OwnArgs,
): Promise<RawInput | 'help'> {
  const rest = normalizeArgs(own === undefined ? withoutProgram(args) : args, reading, own);
  const { createParser } = await import('./parser.js');
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
