import { ConfigError, quoteValue, type ValueSource } from './errors.js';
import { OPTIONS, OPTION_KEYS, type OptionKey, type OptionSpec, type RawOptions } from './config/options.js';
import { GO_FALSE, GO_TRUE, goBoolExpected } from './config/gobool.js';
import type { IgnoredEnv, RawInput } from './config/parse.js';

/**
 * Reading the command line as Istio's flag parser (pflag, under cobra) reads it, into raw values
 * with where each came from, driven by the option table. One walk (readArgs) serves every
 * runtime and every caller:
 * - quickRaw: the init container's hot path (the entrypoint's prelude), synchronous, with nothing
 *   loaded beyond the option table; it gives up (undefined) on anything but our flags with good
 *   values: --help, --version, an unknown flag, a stray word.
 * - rawFromArgs: the same walk; what quickRaw gives up on is answered from the lazily loaded
 *   parser module (parser.ts): --help and --version through yargs (its help layout, generated
 *   from the table), errors with their hints (did you mean...).
 * The command line is read once per run: what else a run needs from it (the error line's format,
 * trace's own flags and flow words) comes out of that one walk (ArgsReading, OwnArgs). The one
 * exception is the entrypoint: when quickRaw gives up the prelude has produced nothing, and the
 * run reads the command line with rawFromArgs, then the only reading whose result is used.
 */

/** The program name Istio's init-container args start with; accepted (and dropped) as a first word. */
export const PROGRAM = 'istio-iptables';

/** The trace subcommand: `istio-iptables trace [flags] FLOW`. */
export const TRACE_COMMAND = 'trace';

/** The diff subcommand: `istio-iptables diff [flags]` compares a namespace with the plan. */
export const DIFF_COMMAND = 'diff';

/** The completion subcommand (yargs's): prints a bash completion script. */
export const COMPLETION_COMMAND = 'completion';

/** What the completion script runs to ask for completions (yargs's). */
export const COMPLETIONS_FLAG = '--get-yargs-completions';

/** Our flags by long name (without dashes) and by short letter. */
const BY_LONG = new Map<string, OptionKey>();
const BY_SHORT = new Map<string, OptionKey>();
for (const key of OPTION_KEYS) {
  const spec: { readonly long: string; readonly short?: string } = OPTIONS[key];
  BY_LONG.set(spec.long, key);
  if (spec.short !== undefined) BY_SHORT.set(spec.short, key);
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
 * The switches that are no option of the table: --help (and -h, as cobra defines it) and
 * --version. Both are booleans as pflag reads them (`--help=false` asks for nothing).
 */
export type MetaSwitch = 'help' | 'version';
const META_LONG: ReadonlyMap<string, MetaSwitch> = new Map([
  ['help', 'help'],
  ['version', 'version'],
]);

/**
 * Something in the arguments that is not one of our flags with a good value, in the order found;
 * the first is the run's error. `bad` is complete (a bad boolean, a missing value, bad syntax);
 * the others are worded by the parser module (parser.ts argsError), with their hints.
 */
export type ArgProblem =
  | { readonly kind: 'bad'; readonly error: ConfigError }
  /** `--dryrun`, `--dryrun=x`: the flag as given, without its value. */
  | { readonly kind: 'unknown-flag'; readonly flag: string }
  /** `-X` in `-nX`: the letter and the whole argument. */
  | { readonly kind: 'unknown-shorthand'; readonly letter: string; readonly arg: string }
  /** `-dry-run`: a long name after one dash (pflag would read `-d ry-run`). */
  | { readonly kind: 'one-dash'; readonly arg: string; readonly long: string }
  /**
   * A word where flags are expected: `first` when it is the first argument (a mistyped
   * subcommand?), `afterSwitch` the switch just before it (`--redirect-dns true`).
   */
  | { readonly kind: 'stray'; readonly word: string; readonly first: boolean; readonly afterSwitch?: string };

interface Visitor {
  flag(key: OptionKey, value: string | boolean): void;
  meta(which: MetaSwitch, on: boolean): void;
  problem(problem: ArgProblem): void;
}

function goBool(flag: string, key: OptionKey | undefined, value: string, v: Visitor): boolean | undefined {
  if (GO_TRUE.has(value)) return true;
  if (GO_FALSE.has(value)) return false;
  const expected = goBoolExpected(value);
  v.problem({ kind: 'bad', error: key === undefined ? new ConfigError(undefined, undefined, `invalid value ${quoteValue(value)} for ${flag}: expected ${expected}`) : new ConfigError(flagSource(key), value, expected) });
  return undefined;
}

function needsArgument(key: OptionKey, given: string): ArgProblem {
  const long = `--${OPTIONS[key].long}`;
  return { kind: 'bad', error: new ConfigError(undefined, undefined, `flag needs an argument: ${given === long ? long : `${given}/${long}`}`) };
}

/**
 * Walk arguments the way pflag reads them, handing each flag of ours with its value to the
 * visitor, and everything else as a problem (or, with `own`, to the subcommand):
 * - `--long=value`; `--long value` for a flag taking a value, whatever the next argument looks
 *   like (`-c -eth0`, `--probe-timeout -5s`); at the very end it is an error, not an empty value;
 * - a switch (boolean) never takes the next argument: `--redirect-dns true` leaves "true" as a
 *   stray word; `=value` takes only Go's boolean spellings;
 * - short flags: `-p 15001`, `-p15001`, `-p=15001`; several switches in one argument (`-nh`),
 *   and a cluster of switches may end with a flag taking a value (`-nb*` is `-n -b *`); a
 *   letter after a flag taking a value is that value (`-mREDIRECT`, `-pnosuchuser`);
 * - `--` ends the flags: what follows are words; `-` alone is a word.
 * Words are an error here (Istio ignores them), except a subcommand's (`own`).
 */
function walkArgs(args: readonly string[], v: Visitor, own?: OwnArgs): void {
  let flagsDone = false;
  // The switch the previous argument ended with, without a value: a word right after it gets a hint.
  let afterSwitch: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const switchBefore = afterSwitch;
    afterSwitch = undefined;
    if (flagsDone || arg.length < 2 || arg.charCodeAt(0) !== 45 /* - */ || (own !== undefined && arg === '->')) {
      // A word. After a switch, a boolean spelling is never a flow word: it is the switch's value, misplaced.
      if (own !== undefined && !(switchBefore !== undefined && (GO_TRUE.has(arg) || GO_FALSE.has(arg)))) own.word(arg);
      else v.problem(switchBefore === undefined ? { kind: 'stray', word: arg, first: i === 0 } : { kind: 'stray', word: arg, first: i === 0, afterSwitch: switchBefore });
      continue;
    }
    if (arg === '--') {
      flagsDone = true;
      continue;
    }
    if (arg.charCodeAt(1) === 45) {
      // --long, --long=value
      const eq = arg.indexOf('=');
      const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      const value = eq > 0 ? arg.slice(eq + 1) : undefined;
      if (name === '' || name[0] === '-' || name[0] === '=') {
        v.problem({ kind: 'bad', error: new ConfigError(undefined, undefined, `bad flag syntax: ${quoteValue(arg)}`) });
        continue;
      }
      const key = BY_LONG.get(name);
      if (key === undefined) {
        const meta = META_LONG.get(name);
        if (meta !== undefined) {
          const on = value === undefined ? true : goBool(`--${name}`, undefined, value, v);
          if (on !== undefined) v.meta(meta, on);
        } else if (own?.names.includes(`--${name}`)) {
          own.flag(`--${name}`, value ?? (i + 1 < args.length ? args[++i] : undefined));
        } else if (own?.switches?.includes(`--${name}`) === true) {
          // A subcommand's switch never takes the next argument.
          own.flag(`--${name}`, value ?? 'true');
          if (value === undefined) afterSwitch = arg;
        } else {
          v.problem({ kind: 'unknown-flag', flag: eq > 0 ? arg.slice(0, eq) : arg });
        }
        continue;
      }
      if (OPTIONS[key].kind === 'boolean') {
        if (value === undefined) {
          v.flag(key, true);
          afterSwitch = arg;
        } else {
          const on = goBool(arg, key, value, v);
          if (on !== undefined) v.flag(key, on);
        }
      } else if (value !== undefined) v.flag(key, value);
      else if (i + 1 < args.length) v.flag(key, args[++i] ?? '');
      else v.problem(needsArgument(key, arg));
      continue;
    }
    // -s, -svalue, -s=value, -s value, and clusters of switches (-nh).
    if (arg.length > 2) {
      const eq = arg.indexOf('=');
      const long = eq > 0 ? arg.slice(1, eq) : arg.slice(1);
      if (BY_LONG.has(long) || META_LONG.has(long) || own?.names.includes(`--${long}`) || own?.switches?.includes(`--${long}`) === true) {
        v.problem({ kind: 'one-dash', arg, long });
        continue;
      }
    }
    let rest = arg.slice(1);
    while (rest !== '') {
      const letter = rest[0] ?? '';
      const key = BY_SHORT.get(letter);
      const attached = rest.length > 2 && rest[1] === '=' ? rest.slice(2) : undefined;
      if (key === undefined && letter !== 'h') {
        v.problem({ kind: 'unknown-shorthand', letter, arg });
        break;
      }
      if (key === undefined || OPTIONS[key].kind === 'boolean') {
        // A switch: -h (help) or one of ours; `-n=false` takes a value, else the cluster goes on.
        let on: boolean | undefined = true;
        if (attached !== undefined) on = goBool(`-${letter}`, key, attached, v);
        rest = attached !== undefined ? '' : rest.slice(1);
        if (on !== undefined) {
          if (key === undefined) v.meta('help', on);
          else v.flag(key, on);
        }
        if (rest === '' && attached === undefined) afterSwitch = `-${letter}`;
        continue;
      }
      if (attached !== undefined) v.flag(key, attached);
      else if (rest.length > 1) v.flag(key, rest.slice(1));
      else if (i + 1 < args.length) v.flag(key, args[++i] ?? '');
      else v.problem(needsArgument(key, `-${letter}`));
      break;
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
 * flags (trace: --flows FILE, the flow's words).
 */
export interface OwnArgs {
  /** The subcommand's flags (`--name`), each taking a value (`--name=value` or the next argument). */
  readonly names: readonly string[];
  /** One of them with its value; undefined when it is the last argument, without a value. */
  readonly flag: (name: string, value: string | undefined) => void;
  /** Its switches (`--name`, `--name=false`): never take the next argument; `flag` gets "true" or the value. */
  readonly switches?: readonly string[];
  /** A word: an argument that is none of our flags and does not start with "-" (but "->"), or any after `--`. */
  readonly word: (arg: string) => void;
}

/** Our flags' values from the command line, by option: the last value, or every value of a repeatable flag. */
export type FlagValues = Partial<Record<OptionKey, string | boolean | readonly string[]>>;

/** What one walk of the command line found. */
export interface ArgsRead {
  readonly flags: FlagValues;
  /** --help (-h) or --version was asked for (the last of each decides). */
  readonly help: boolean;
  readonly version: boolean;
  /** The first thing that is not one of our flags with a good value: the run's error. */
  readonly problem?: ArgProblem;
}

/** The one walk of a command line (no program name): our flags' values, the switches asked for, the first problem. */
export function readArgs(args: readonly string[], reading: ArgsReading = { logAsJson: false }, own?: OwnArgs): ArgsRead {
  const flags: Record<string, string | boolean | string[]> = {};
  const meta = { help: false, version: false };
  // The first problem is the error; the walk goes on to the end so that `reading` is complete.
  let problem: ArgProblem | undefined;
  walkArgs(
    args,
    {
      flag: (key, value) => {
        if (key === 'logAsJson') reading.logAsJson = value === true;
        const before = flags[key];
        // A repeatable flag keeps every value; any other repeated flag its last.
        if (OPTIONS[key].kind === 'strings') flags[key] = Array.isArray(before) ? [...before, String(value)] : [String(value)];
        else flags[key] = value;
      },
      meta: (which, on) => {
        meta[which] = on;
      },
      problem: (p) => {
        problem ??= p;
      },
    },
    own,
  );
  return problem === undefined ? { flags, ...meta } : { flags, ...meta, problem };
}

/** Merge flag values and the environment into raw values with their sources. Flags win. */
export function collectRaw(flags: FlagValues, env: NodeJS.ProcessEnv): RawInput {
  const values: Record<string, string | boolean | readonly string[]> = {};
  const sources: Partial<Record<OptionKey, ValueSource>> = {};
  let ignored: IgnoredEnv[] | undefined;
  for (const key of OPTION_KEYS) {
    const spec: OptionSpec = OPTIONS[key];
    const fromFlag = flags[key];
    if (fromFlag !== undefined) {
      values[key] = fromFlag;
      sources[key] = flagSource(key);
      continue;
    }
    for (const name of spec.env) {
      const v = env[name];
      // As viper: an empty environment variable counts as unset.
      if (v === undefined || v === '') continue;
      // As Istio: a variable it cannot parse leaves the option as it was (the next variable, or
      // the default), said in a warning once logging is set up; unless the table says it fails
      // closed (DRY_RUN: validation then rejects it).
      const expected = spec.envStrict === true ? undefined : unreadableEnv(spec, name, v);
      if (expected !== undefined) {
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
 * Arguments (a leading "istio-iptables" dropped) and environment read into raw values in one
 * walk, with nothing loaded beyond the option table; undefined when the arguments hold anything
 * but our flags with good values (--help, --version, an unknown flag, a stray word, a bad
 * boolean, a missing value), which rawFromArgs then answers.
 */
export function quickRaw(args: readonly string[], env: NodeJS.ProcessEnv): RawInput | undefined {
  const read = readArgs(withoutProgram(args));
  return read.problem === undefined && !read.help && !read.version ? collectRaw(read.flags, env) : undefined;
}

/** The command whose --help is asked for: the main one (apply, dry run), or a subcommand with its usage text. */
export type HelpCommand = { readonly name: 'apply' } | { readonly name: 'trace' | 'diff'; readonly usage: string };

/**
 * Read arguments and environment into raw values with their sources. A leading
 * "istio-iptables" (as in Istio's init-container args) is dropped. Returns 'help' when --help or
 * --version was answered (given to `onHelp`; help is `command`'s). The arguments are walked once:
 * `reading` gets what the caller needs even when this throws (whether the error line is JSON),
 * and `own` a subcommand's flags and words (its arguments are then taken as they are, with no
 * program name to drop). The first problem in the arguments throws, as pflag stops at it, even
 * with --help.
 */
export async function rawFromArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  onHelp: (text: string) => void = () => {},
  reading?: ArgsReading,
  own?: OwnArgs,
  command: HelpCommand = { name: 'apply' },
): Promise<RawInput | 'help'> {
  const read = readArgs(own === undefined ? withoutProgram(args) : args, reading, own);
  if (read.problem?.kind === 'bad') throw read.problem.error;
  if (read.problem !== undefined || read.help || read.version) {
    // The error's hints, help and the version come from the parser module, loaded only for them.
    const { answerArgs } = await import('./parser.js');
    onHelp(await answerArgs(read, command, own?.names ?? []));
    return 'help';
  }
  return collectRaw(read.flags, env);
}

/**
 * The `completion` subcommand and what its script asks for (`--get-yargs-completions WORDS`):
 * yargs's bash completion script, or the completions of the last word, as the parser module
 * answers them.
 */
export async function completions(args: readonly string[]): Promise<string> {
  const { completion } = await import('./parser.js');
  return completion(args);
}
