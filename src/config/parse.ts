import { ConfigError, valueText, type ValueSource } from '../errors.js';
import type { CaptureConfig, Config, OwnerGroupFilter, RunConfig } from './config.js';
import { OPTIONS, OPTION_KEYS, type ConfigInput, type OptionKey, type OptionSpec, type OptionValue, type RawOptions } from './options.js';
import { checkOptions, type OptionIssue } from './check.js';
import type { HostFacts } from './host.js';

/**
 * Values as given, with where each came from (flag, env var, library option); absent keys take
 * defaults. Flags and env vars give text (RawOptions), configFromObject typed values (ConfigInput)
 * or, from JavaScript, text: each kind's schema reads both.
 */
export interface RawInput {
  readonly values: RawOptions | ConfigInput;
  readonly sources: Partial<Record<OptionKey, ValueSource>>;
  /** Environment variables ignored because Istio could not parse them either (logged as warnings). */
  readonly ignored?: readonly IgnoredEnv[];
}

/** An environment variable whose value was ignored, and what was expected. */
export interface IgnoredEnv {
  readonly name: string;
  readonly value: string;
  readonly expected: string;
}

type Parsed = { [K in OptionKey]: OptionValue<K> };
/** Options whose absence means "derive it" rather than "use a default". */
type Derived = 'proxyUids' | 'proxyGids' | 'dnsServers' | 'enableIpv6' | 'logTargets';
export type ParsedOptions = Omit<Parsed, Derived> & Partial<Pick<Parsed, Derived>>;

function sourceOf(input: RawInput, key: OptionKey): ValueSource {
  return input.sources[key] ?? { kind: 'option', name: key };
}

/**
 * Validate the raw values given; options not given take their typed default. The first issue
 * (in the table's order) throws a ConfigError naming the flag, variable or option it came from,
 * the value and what was expected.
 */
export function parseOptions(input: RawInput): ParsedOptions {
  const given: OptionKey[] = [];
  const values: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    const value = input.values[key];
    if (value === undefined) continue;
    given.push(key);
    // A repeatable flag's one value (text, or a JavaScript caller's lone value) is a list of one.
    values[key] = OPTIONS[key].kind === 'strings' && !Array.isArray(value) ? [value] : value;
  }
  const result = checkOptions(given, values);
  if (!result.ok) throw issueError(input, values, result.issue);
  const data = result.data;
  const out: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    const spec: OptionSpec = OPTIONS[key];
    if (key in data) out[key] = data[key];
    else if (spec.default !== undefined) out[key] = spec.parsed;
  }
  // Istio treats an empty uid/gid list as "not given": the derived default applies.
  if ((out.proxyUids as unknown[] | undefined)?.length === 0) delete out.proxyUids;
  if ((out.proxyGids as unknown[] | undefined)?.length === 0) delete out.proxyGids;
  return out as ParsedOptions;
}

/**
 * An issue as a ConfigError: the option it is about, the value there (one value of a repeatable
 * flag), what was expected. A value that is not text (the library's typed input) is shown as the
 * caller wrote it: `70000`, `[80,70000]`.
 */
function issueError(input: RawInput, values: Record<string, unknown>, issue: OptionIssue): ConfigError {
  const { key, index } = issue;
  const at = values[key];
  const given = index !== undefined && Array.isArray(at) ? (at[index] as unknown) : at;
  const expected = issue.message ?? 'a valid value';
  if (typeof given === 'string') return new ConfigError(sourceOf(input, key), given, expected);
  return new ConfigError(sourceOf(input, key), valueText(given), expected, { typed: true });
}

/**
 * Istio's owner-group filter: when the include list is exactly "*", the exclude list decides
 * (empty: every group is captured); otherwise only the listed groups are captured and the
 * exclude list is ignored, as in Istio (we say so in a warning). An empty include list captures
 * no group. An exclude of "*" could never load and is rejected.
 */
function ownerGroupFilter(p: ParsedOptions, input: RawInput, warn: (msg: string) => void): OwnerGroupFilter {
  const inc = p.outboundOwnerGroups;
  const exc = p.outboundOwnerGroupsExclude;
  if (exc.all) {
    throw new ConfigError(sourceOf(input, 'outboundOwnerGroupsExclude'), '*', 'a comma-separated list of groups ("*" would exclude every group)');
  }
  if (inc.all) return { kind: 'exclude', groups: exc.groups };
  if (exc.groups.length > 0) {
    warn(`${describeKey('outboundOwnerGroupsExclude')} is ignored because ${describeKey('outboundOwnerGroups')} lists groups (as in Istio)`);
  }
  if (inc.groups.length === 0) warn(`${describeKey('outboundOwnerGroups')} is empty: no outbound traffic is captured`);
  return { kind: 'include', groups: inc.groups };
}

function describeKey(key: OptionKey): string {
  return `--${OPTIONS[key].long}`;
}

/** Turn parsed options plus host facts into the final configuration. */
export function resolveConfig(
  p: ParsedOptions,
  host: HostFacts,
  input: RawInput = { values: {}, sources: {} },
  warn: (msg: string) => void = () => {},
): Config {
  if (p.nftSets && !p.nativeNftables) {
    // Sets are a rendering of the nft script; iptables has no counterpart here. Rejected rather
    // than ignored so a pod never silently runs a configuration other than the one asked for.
    throw new ConfigError(undefined, undefined, `${describeKey('nftSets')} needs ${describeKey('nativeNftables')}`);
  }
  // Each option of a section under its own key; then what is derived when not given.
  const capture: Record<string, unknown> = {};
  const run: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    const spec: OptionSpec = OPTIONS[key];
    if (spec.config === 'capture') capture[key] = p[key];
    else if (spec.config === 'run') run[key] = p[key];
  }
  const proxyUids = p.proxyUids ?? [host.proxyUid()];
  const needsResolvConf = p.redirectDns && !p.captureAllDns && p.dnsServers === undefined;
  capture.proxyUids = proxyUids;
  capture.proxyGids = p.proxyGids ?? proxyUids;
  capture.dnsServers = p.dnsServers ?? (needsResolvConf ? host.dnsServers() : { ipv4: [], ipv6: [] });
  capture.enableIpv6 = p.enableIpv6 ?? host.ipv6Enabled(p.dualStack);
  const loopbackIpv6 = capture.enableIpv6 === true ? host.loopbackIpv6?.() : undefined;
  if (loopbackIpv6 !== undefined) capture.loopbackIpv6 = loopbackIpv6;
  capture.ownerGroups = ownerGroupFilter(p, input, warn);
  run.logTargets = p.logTargets ?? ['stderr'];
  return { capture: capture as unknown as CaptureConfig, run: run as unknown as RunConfig };
}
