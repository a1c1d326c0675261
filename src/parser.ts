import yargs, { type Argv, type Options } from 'yargs';
import { ConfigError } from './errors.js';
import { OPTIONS, OPTION_KEYS, type OptionKey, type OptionSpec } from './config/options.js';
import { PROGRAM } from './args.js';

/**
 * The yargs definition of the command line, generated from the option table: it parses the
 * arguments (as pflag cut them, see args.ts), answers --help and reports unknown flags. The
 * entrypoint's prelude reads an ordinary run's flags without it (yargs costs that runtime ~60 M
 * instructions, a dry run ~7 M without it); test/args.test.ts checks both readings agree.
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

function yargsOption(key: OptionKey): Options {
  const spec: OptionSpec = OPTIONS[key];
  const env = spec.env.length > 0 ? ` [env: ${spec.env.join(', ')}]` : '';
  const def = spec.default === undefined || spec.default === '' ? '' : ` [default: ${String(spec.default)}]`;
  return {
    type: spec.kind === 'strings' ? 'string' : spec.kind,
    ...(spec.kind === 'strings' ? { array: true, nargs: 1 } : {}),
    ...('short' in spec ? { alias: spec.short } : {}),
    describe: `${spec.help}${def}${env}`,
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
        'Flags beat environment variables; a later flag beats an earlier one.\n\n' +
        `${PROGRAM} trace [flags] FLOW: walk a connection through the rules offline (trace --help).\n` +
        `${PROGRAM} diff [flags]: compare a namespace's rules and routes with the plan (diff --help).`,
    )
    .parserConfiguration({
      // Repeated flags arrive as arrays: collectRaw keeps the last value, or all for a repeatable flag.
      'duplicate-arguments-array': true,
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
    // English whatever LANG or LC_ALL say: the same text from both runtimes.
    .locale('en')
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
