import { rawFromArgs } from '../args.js';
import type { Config } from './config.js';
import { detectHost, type HostFacts } from './host.js';
import { OPTIONS, OPTION_KEYS, type ConfigInput, type OptionKey } from './options.js';
import { parseOptions, resolveConfig, type RawInput } from './parse.js';
import { ConfigError } from '../errors.js';
import { closest } from '../suggest.js';

/** Configuration from istio-iptables arguments and environment, exactly as the CLI reads them. */
export async function configFromArgs(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
  host: HostFacts = detectHost(env),
): Promise<Config> {
  const raw = await rawFromArgs(args, env);
  if (raw === 'help') throw new ConfigError(undefined, undefined, '--help is for the command line, not for configFromArgs');
  return resolveConfig(parseOptions(raw), host, raw);
}

/**
 * Configuration from typed values keyed like OPTIONS (`{ proxyPort: 15001, mode: 'TPROXY',
 * inboundPorts: '*', outboundExcludeCidrs: ['10.0.0.0/8'] }`), validated by the same schemas as
 * the CLI's flags. Errors name the option key, the value and what was expected; an unknown key
 * names the nearest known one. (From JavaScript, each option's flag text is accepted too.)
 */
export function configFromObject(values: ConfigInput, host: HostFacts = detectHost({})): Config {
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    const given = values === null ? 'null' : Array.isArray(values) ? 'an array' : `a ${typeof values}`;
    throw new ConfigError(undefined, undefined, `configFromObject takes an object keyed like the option table (OPTIONS), not ${given}`);
  }
  for (const key of Object.keys(values)) {
    if (!Object.hasOwn(OPTIONS, key)) throw new ConfigError(undefined, key, unknownOption(key));
  }
  const raw: RawInput = { values, sources: {} };
  return resolveConfig(parseOptions(raw), host, raw);
}

/**
 * What is said of a key that is no option: the nearest option key (a flag's long name or an
 * environment variable's name suggests its option's key), or, with none near, every key.
 */
function unknownOption(key: string): string {
  const names = new Map<string, OptionKey>(OPTION_KEYS.flatMap((k) => [k, OPTIONS[k].long, ...OPTIONS[k].env].map((name) => [name, k] as const)));
  // A name as written first (an environment variable's name is also its flag's, case and "_" aside).
  const name = names.has(key) ? key : closest(key, [...names.keys()]);
  const near = name === undefined ? undefined : names.get(name);
  if (name === undefined || near === undefined) return `unknown option ${JSON.stringify(key)}: the options are the option table's keys (${OPTION_KEYS.join(', ')})`;
  const via = name === near ? '' : name === OPTIONS[near].long ? ` (the option of --${name})` : ` (the option of environment variable ${name})`;
  return `unknown option ${JSON.stringify(key)}: did you mean ${near}${via}?`;
}
