import yargs, { type Argv, type Options } from 'yargs';
import { ConfigError, quoteValue } from './errors.js';
import { OPTIONS, OPTION_KEYS, type OptionCommand, type OptionKey, type OptionSpec } from './config/options.js';
import { VALUES } from './config/values.js';
import { goBoolMeant } from './config/gobool.js';
import { COMPLETION_COMMAND, DIFF_COMMAND, PROGRAM, TRACE_COMMAND, type ArgProblem, type ArgsRead, type HelpCommand } from './args.js';
import { BUILD_INFO } from './build-info.js';
import { closest } from './suggest.js';

/**
 * What a run needs only when it is not an ordinary run: --help (yargs, its definition generated
 * from the option table), --version, shell completion (yargs's), and the wording of a command
 * line's errors with their hints. args.ts reads the command line itself, in every runtime, and
 * loads this module only for these; in the entrypoint it is a script of its own, read when first
 * needed (scripts/bundle-quickjs.mjs). Its two exports are all args.ts asks of it: each export
 * of a lazily loaded module costs every run of the entrypoint a little at start-up.
 */

const GROUP_TITLES: Record<string, string> = {
  Ports: 'Proxy ports:',
  Capture: 'What is captured:',
  'Proxy identity': 'Proxy identity (never captured):',
  DNS: 'DNS capture:',
  TPROXY: 'TPROXY mode:',
  Run: 'Running:',
  Output: 'Output:',
};

const MAIN_USAGE =
  `Usage: ${PROGRAM} [flags]\n\n` +
  'Programs the pod network namespace so that the sidecar proxy sees all traffic: inbound TCP to\n' +
  'the inbound capture port, outbound TCP to the proxy port, with the exclusions below.\n' +
  'Flags beat environment variables; a later flag beats an earlier one.';

/** Whether an option has an effect in a command (and so is in its --help). */
function appliesTo(spec: OptionSpec, command: OptionCommand): boolean {
  return spec.commands === undefined || spec.commands.includes(command);
}

function yargsOption(key: OptionKey): Options {
  const spec: OptionSpec = OPTIONS[key];
  const env = spec.env.length > 0 ? ` [env: ${spec.env.join(', ')}]` : '';
  const def = spec.default === undefined || spec.default === '' ? '' : ` [default: ${String(spec.default)}]`;
  const choices = VALUES[spec.value].choices;
  return {
    type: spec.kind === 'strings' ? 'string' : spec.kind,
    ...(spec.kind === 'strings' ? { array: true, nargs: 1 } : {}),
    ...('short' in spec ? { alias: spec.short } : {}),
    // Listed by --help and offered by completion; the value kinds check them (args.ts and
    // parse.ts read the command line, never yargs).
    ...(choices === undefined ? {} : { choices: [...choices] }),
    describe: `${spec.help}${def}${env}`,
    group: GROUP_TITLES[spec.group] ?? spec.group,
    // Accepted and checked, with no effect anywhere: not in --help.
    hidden: spec.commands?.length === 0,
    // No yargs defaults: absence must stay visible so env vars and derived defaults can apply.
  };
}

/**
 * The yargs definition of a command's command line, for its --help and (the main command's) shell
 * completion. A subcommand's has its own usage text and only the options that have an effect
 * there; the main command's lists the subcommands and --version.
 */
function createParser(command: HelpCommand = { name: 'apply' }): Argv {
  let parser = yargs([])
    .scriptName(PROGRAM)
    .parserConfiguration({
      'camel-case-expansion': false,
      'boolean-negation': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'strip-aliased': true,
    })
    .help('help')
    .alias('help', 'h')
    // English whatever LANG or LC_ALL say: the same text from both runtimes.
    .locale('en')
    .wrap(Math.min(120, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new ConfigError(undefined, undefined, msg);
    });
  if (command.name === 'apply') {
    parser = parser
      .usage(MAIN_USAGE)
      .command(TRACE_COMMAND, 'Walk a connection through the rules offline (trace --help)')
      .command(DIFF_COMMAND, "Compare a namespace's rules and routes with the plan (diff --help)")
      .completion(COMPLETION_COMMAND, `Print a bash completion script (${PROGRAM} completion >> ~/.bashrc)`)
      .version('version', 'Show the version, its JavaScript engine and build', versionText().replace(/\n$/, ''));
  } else {
    parser = parser.version(false);
  }
  for (const key of OPTION_KEYS) {
    if (command.name === 'apply' || appliesTo(OPTIONS[key], command.name)) parser = parser.option(OPTIONS[key].long, yargsOption(key));
  }
  return parser;
}

/** Run the parser on arguments and return what it printed (help, a completion script, completions). */
async function printed(parser: Argv, args: readonly string[]): Promise<string> {
  let out = '';
  await parser.parseAsync([...args], {}, (_err, _argv, output) => {
    out = output;
  });
  return out === '' || out.endsWith('\n') ? out : `${out}\n`;
}

/**
 * A command's --help. A subcommand's usage text is printed as it is written (yargs would take the
 * indentation off its lines), then its flags.
 */
async function helpText(command: HelpCommand): Promise<string> {
  const flags = await printed(createParser(command), ['--help']);
  if (command.name === 'apply') return flags;
  const others = `The main command's other flags (a pod's init arguments as they are) are accepted and have no\neffect here.\n`;
  return `${command.usage.replace(/\n*$/, '\n')}\n${others}\n${flags}`;
}

/**
 * `completion` (the bash completion script) and `--get-yargs-completions WORDS` (what the script
 * asks for: the flags, subcommands or choices that complete the last word), as yargs answers them.
 */
export function completion(args: readonly string[]): Promise<string> {
  return printed(createParser(), args);
}

/** --version: the package's version, the JavaScript engine that runs it, and the build. */
function versionText(): string {
  const info = BUILD_INFO ?? { version: 'unknown', build: 'unknown (run from source, not built)' };
  return `istio-iptables-ts ${info.version}\nengine: ${info.engine ?? `Node.js ${process.version}`}\nbuild: ${info.build}\n`;
}

/** A flag as given, quoted when it holds anything but visible ASCII (control characters stay visible). */
function shown(text: string): string {
  return /^[\x21-\x7e]+$/.test(text) ? text : quoteValue(text);
}

/**
 * The error for a problem the command line's reading found (args.ts readArgs), with the hint that
 * fits: the flag meant by a misspelt one, `--flag=value` for a switch given a separate value, the
 * subcommand meant by a misspelt first word. `own`: the subcommand's own flags (`--flows`).
 */
function argsError(problem: ArgProblem, own: readonly string[]): ConfigError {
  const longs = [...OPTION_KEYS.map((k) => `--${OPTIONS[k].long}`), '--help', '--version', ...own];
  const message = (text: string): ConfigError => new ConfigError(undefined, undefined, text);
  switch (problem.kind) {
    case 'bad':
      return problem.error;
    case 'unknown-flag': {
      const negated = /^--no-(.*)$/.exec(problem.flag)?.[1];
      const switchNamed = negated === undefined ? undefined : OPTION_KEYS.find((k) => OPTIONS[k].long === negated && OPTIONS[k].kind === 'boolean');
      const near = switchNamed === undefined ? closest(problem.flag, longs) : `--${OPTIONS[switchNamed].long}=false`;
      return message(`unknown flag ${shown(problem.flag)}${near === undefined ? ' (see --help)' : ` (did you mean ${near}?)`}`);
    }
    case 'unknown-shorthand': {
      const shorts = OPTION_KEYS.flatMap((k) => ('short' in OPTIONS[k] ? [(OPTIONS[k] as { short: string }).short] : []));
      const other = problem.letter === problem.letter.toLowerCase() ? problem.letter.toUpperCase() : problem.letter.toLowerCase();
      const long = problem.arg.startsWith('-') ? closest(`--${problem.arg.slice(1)}`, longs) : undefined;
      const near = shorts.includes(other) ? `-${other}` : long;
      return message(`unknown shorthand flag ${quoteValue(problem.letter)} in ${shown(problem.arg)}${near === undefined ? ' (see --help)' : ` (did you mean ${near}?)`}`);
    }
    case 'one-dash':
      return message(`unknown flag ${shown(problem.arg)}: a long flag takes two dashes (did you mean --${problem.long}?)`);
    case 'stray': {
      if (problem.afterSwitch !== undefined) {
        const meant = goBoolMeant(problem.word);
        return message(
          `unexpected argument ${quoteValue(problem.word)} after ${problem.afterSwitch}: a switch takes its value after "="` +
            (meant === undefined ? ' (see --help)' : ` (did you mean ${problem.afterSwitch}=${meant}?)`),
        );
      }
      const command = problem.first ? closest(problem.word, [TRACE_COMMAND, DIFF_COMMAND, COMPLETION_COMMAND]) : undefined;
      if (command !== undefined) return message(`unknown command ${quoteValue(problem.word)} (did you mean ${command}?)`);
      return message(`unexpected argument ${quoteValue(problem.word)}: only flags are taken here (see --help)`);
    }
  }
}

/**
 * What a reading of the command line (args.ts readArgs) that is not an ordinary run gets: the
 * error for its first problem (thrown, with its hint), else its command's --help, else --version.
 * `own`: the subcommand's own flags.
 */
export async function answerArgs(read: ArgsRead, command: HelpCommand, own: readonly string[]): Promise<string> {
  if (read.problem !== undefined) throw argsError(read.problem, own);
  return read.help ? await helpText(command) : versionText();
}
