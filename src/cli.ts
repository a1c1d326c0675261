import yargs, { type Argv, type Options } from 'yargs';
import { ConfigError, type ValueSource } from './errors.js';
import { OPTIONS, OPTION_KEYS, type OptionKey, type RawOptions } from './config/options.js';
import { parseOptions, resolveConfig, type RawInput } from './config/parse.js';
import { detectHost, type HostFacts } from './config/host.js';
import { buildPlan } from './build/plan.js';
import { renderJson, renderText } from './render/dryrun.js';
import { createLogger, type Logger } from './log.js';

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
  const spec = OPTIONS[key];
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
      throw err ?? new ConfigError(undefined, undefined, msg);
    });
  for (const key of OPTION_KEYS) parser = parser.option(OPTIONS[key].long, yargsOption(key));
  return parser;
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
      sources[key] = { kind: 'flag', long: spec.long, ...('short' in spec ? { short: spec.short } : {}) };
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
    let helpShown = false;
    const parser = createParser(rest);
    const argv = (await parser.parseAsync(rest, {}, (err, _argv, output) => {
      if (output && !err) {
        helpShown = true;
        io.stdout(`${output}\n`);
      }
    })) as Record<string, unknown>;
    if (helpShown) return 0;
    const positional = (argv['_'] as unknown[] | undefined) ?? [];
    if (positional.length > 0) {
      throw new ConfigError(undefined, undefined, `unexpected argument ${JSON.stringify(String(positional[0]))} (flags only; see --help)`);
    }
    const raw = collectRaw(argv, env);
    const parsed = parseOptions(raw);
    log = createLogger(parsed.logOutputLevel, io.stderr);
    const host = options.host ?? detectHost(env, (m) => log.info(m));
    const config = resolveConfig(parsed, host, raw);
    const plan = buildPlan(config.capture);
    for (const note of plan.notes) log.warn(note);
    if (!config.run.dryRun) {
      throw new ConfigError(
        undefined,
        undefined,
        'applying rules to the host is not available in this version; pass -n/--dry-run to print them',
      );
    }
    io.stdout(config.run.output === 'json' ? renderJson(plan) : renderText(plan));
    return 0;
  } catch (err) {
    io.stderr(`${PROGRAM}: ${errorMessage(err)}\n`);
    if (!(err instanceof ConfigError)) log.debug(err instanceof Error ? (err.stack ?? '') : '');
    return 1;
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  if (err instanceof Error) {
    // yargs reports unknown flags and missing values as plain errors: keep them to one line.
    return err.message.replace(/\s*\n\s*/g, '; ');
  }
  return String(err);
}
