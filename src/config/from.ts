import { rawFromArgs } from '../args.js';
import type { Config } from './config.js';
import { detectHost, type HostFacts } from './host.js';
import { OPTION_KEYS, type RawOptions } from './options.js';
import { parseOptions, resolveConfig, type RawInput } from './parse.js';
import { ConfigError } from '../errors.js';

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
 * Configuration from an object keyed like OPTIONS (`{ inboundPorts: '*', mode: 'TPROXY' }`),
 * with the same validation as the CLI. Errors name the option key.
 */
export function configFromObject(values: RawOptions, host: HostFacts = detectHost({})): Config {
  for (const key of Object.keys(values)) {
    if (!(OPTION_KEYS as string[]).includes(key)) {
      throw new ConfigError({ kind: 'option', name: key }, key, `one of the known options (${OPTION_KEYS.join(', ')})`);
    }
  }
  const raw: RawInput = { values, sources: {} };
  return resolveConfig(parseOptions(raw), host, raw);
}
