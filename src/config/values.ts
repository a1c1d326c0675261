import { NEVER } from 'zod/v4/core';
import { GO_FALSE, GO_TRUE, goBoolExpected } from './gobool.js';
import type { Cidr, OwnerId, PortOrRange } from '../model/rule.js';
import { parseAddress, parseCidr, type ParsedAddress } from './net.js';
import { closest, didYouMean } from '../suggest.js';

/**
 * Value schemas, one per kind of option value. Each takes the raw string exactly as it arrived
 * and either returns a typed value or fails with an issue whose message says what was expected.
 * Nothing downstream ever sees the raw string again.
 */

/** Trim spaces only: a tab, newline or other control character is never part of a valid value. */
export function trimSpaces(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s.charCodeAt(start) === 32) start++;
  while (end > start && s.charCodeAt(end - 1) === 32) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/**
 * Split a comma-separated list as Istio does (empty items dropped). Spaces around items are
 * trimmed, since Istio's output tolerates "80, 443" (iptables splits on them); nothing else is.
 */
export function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map(trimSpaces)
    .filter((item) => item.length > 0);
}

/** Show an offending item inside a message, quoted so control characters are visible. */
const q = (s: string): string => JSON.stringify(s);

/** What a check gets from zod (its ParsePayload): the input, and the issues to report on it. */
export interface Ctx {
  readonly value: unknown;
  readonly issues: { readonly code: string; readonly message?: string; readonly expected?: string; readonly input: unknown }[];
}

function fail(ctx: Ctx, message: string): typeof NEVER {
  ctx.issues.push({ code: 'custom', message, input: ctx.value });
  return NEVER;
}

/**
 * A kind of value (a port, a port list, a CIDR list, ...): its check, which takes the raw value
 * exactly as it arrived and returns the typed value or reports an issue saying what was expected.
 * Each kind becomes a zod schema of its own on first use (schemaOf), and parse.ts composes the
 * schemas of the options given into one object schema.
 *
 * A kind is a lone zod transform that checks the input's type itself, rather than a string schema
 * piped into a transform: in the entrypoint's interpreter a pipe costs ~50 us to build and a
 * transform ~15 us (measured), and the schemas are built at every start-up.
 */
export interface ValueKind<T> {
  readonly check: (raw: unknown, ctx: Ctx) => T;
  /** The values it takes when they are a fixed list: --help lists them, shell completion offers them. */
  readonly choices?: readonly string[];
}

/** A kind taking a string. */
function stringValue<T>(fn: (raw: string, ctx: Ctx) => T): ValueKind<T> {
  return { check: (raw, ctx) => (typeof raw === 'string' ? fn(raw, ctx) : wrongType(ctx)) };
}

/** What a choice kind's reading gives for a word that is none of its choices. */
const NOT_ONE: unique symbol = Symbol('not one of the choices');

/**
 * A kind taking one of a fixed list of words (`read` gives the typed value of a good one, else
 * NOT_ONE); a bad one gets the nearest choice as a hint.
 */
function choiceValue<T>(choices: readonly string[], expected: string, read: (raw: string) => T | typeof NOT_ONE): ValueKind<T> {
  return {
    choices,
    check: (raw, ctx) => {
      if (typeof raw !== 'string') return wrongType(ctx);
      const value = read(raw);
      return value !== NOT_ONE ? value : fail(ctx, `${expected}${didYouMean(trimSpaces(raw), choices)}`);
    },
  };
}

function wrongType(ctx: Ctx): typeof NEVER {
  ctx.issues.push({ code: 'invalid_type', expected: 'string', input: ctx.value });
  return NEVER;
}

const PORT_EXPECTED = 'a port 1-65535';

export function parsePort(item: string): number | null {
  if (!/^[0-9]{1,5}$/.test(item)) return null;
  const n = Number(item);
  return n >= 1 && n <= 65535 ? n : null;
}

/** A single port, 1-65535. */
export const port = stringValue((raw, ctx) => {
  const n = parsePort(trimSpaces(raw));
  return n ?? fail(ctx, PORT_EXPECTED);
});

/**
 * A port in a list that becomes `--dport` matches: 0-65535. Istio's injector accepts 0 in its port
 * annotations (includeInboundPorts, excludeInboundPorts, excludeOutboundPorts) and renders it as
 * given; iptables and nft take `--dport 0` / `dport 0` (a port no connection uses).
 */
export function parseListPort(item: string): number | null {
  if (!/^[0-9]{1,5}$/.test(item)) return null;
  const n = Number(item);
  return n <= 65535 ? n : null;
}

/** A comma-separated list of ports 0-65535 (may be empty). */
export const portList = stringValue((raw, ctx): readonly number[] => {
  const out: number[] = [];
  for (const item of splitList(raw)) {
    const n = parseListPort(item);
    if (n === null) return fail(ctx, `a comma-separated list of ports 0-65535 (${q(item)} is not a port)`);
    out.push(n);
  }
  return out;
});

/**
 * A comma-separated list of ports 0-65535 and ranges `first:last` (first <= last), as iptables'
 * `--dport` takes them (-q/-o: Istio renders each item into `--dport` as given, and its injector
 * does not check includeOutboundPorts). A range of one port is that port.
 */
export const portRangeList = stringValue((raw, ctx): readonly PortOrRange[] => {
  const out: PortOrRange[] = [];
  for (const item of splitList(raw)) {
    const colon = item.indexOf(':');
    const first = parseListPort(colon < 0 ? item : item.slice(0, colon));
    const last = colon < 0 ? first : parseListPort(item.slice(colon + 1));
    if (first === null || last === null || first > last) {
      return fail(ctx, `a comma-separated list of ports 0-65535 or ranges such as 8000:8080 (${q(item)} is neither)`);
    }
    out.push(first === last ? first : { first, last });
  }
  return out;
});

/** Inbound ports to capture (`-b`): none, all (`*`) or a list. */
export type InboundPorts =
  | { readonly kind: 'none' }
  | { readonly kind: 'all' }
  | { readonly kind: 'list'; readonly ports: readonly number[] };

/** Inbound ports: "" (capture none), "*" (all) or a list. Like Istio, any non-empty value turns capture on. */
export const inboundPorts = stringValue((raw, ctx): InboundPorts => {
  if (raw === '') return { kind: 'none' };
  if (trimSpaces(raw) === '*') return { kind: 'all' };
  const ports: number[] = [];
  for (const item of splitList(raw)) {
    const n = parseListPort(item);
    if (n === null) {
      return fail(
        ctx,
        item === '*'
          ? `"*" alone, or a comma-separated list of ports 0-65535 ("*" cannot be mixed with ports)`
          : `a comma-separated list of ports 0-65535, or "*" (${q(item)} is not a port)`,
      );
    }
    ports.push(n);
  }
  return { kind: 'list', ports };
});

/** CIDRs split by family. */
export interface CidrSet {
  readonly ipv4: readonly Cidr[];
  readonly ipv6: readonly Cidr[];
  /** Some CIDR in the list is written with a loopback address. */
  readonly hasLoopback: boolean;
}

/** Outbound destinations to capture (`-i`): all (`*`) or a list of CIDRs. */
export type OutboundCidrs = ({ readonly kind: 'all' } | ({ readonly kind: 'list' } & CidrSet));

function cidrItems(raw: string, ctx: Ctx, wildcardNote: string): CidrSet | typeof NEVER {
  const ipv4: Cidr[] = [];
  const ipv6: Cidr[] = [];
  let hasLoopback = false;
  for (const item of splitList(raw)) {
    const cidr = parseCidr(item);
    if (cidr === null) {
      return fail(ctx, item === '*' ? wildcardNote : `a comma-separated list of CIDRs such as 10.0.0.0/8 or fd00::/8 (${notCidr(item)})`);
    }
    const { loopback, ...plain } = cidr;
    hasLoopback ||= loopback;
    (cidr.family === 'ipv4' ? ipv4 : ipv6).push(plain);
  }
  return { ipv4, ipv6, hasLoopback };
}

/** Why an item is not a CIDR, with the fix when it is a bare address (`10.0.0.1` for `10.0.0.1/32`). */
function notCidr(item: string): string {
  const address = parseAddress(item);
  if (address === null) return `${q(item)} is not a CIDR`;
  return `${q(item)} is an address, not a CIDR: for that address alone write ${item}/${address.family === 'ipv4' ? 32 : 128}`;
}

/** Outbound include CIDRs: "*" or a list of IPv4/IPv6 CIDRs. */
export const outboundCidrs = stringValue((raw, ctx): OutboundCidrs => {
  if (trimSpaces(raw) === '*') return { kind: 'all' };
  const set = cidrItems(raw, ctx, `"*" alone, or a comma-separated list of CIDRs ("*" cannot be mixed with CIDRs)`);
  return { kind: 'list', ...set };
});

/** Outbound exclude CIDRs: a list; "*" is rejected, as Istio does. */
export const excludeCidrs = stringValue((raw, ctx): CidrSet => {
  if (trimSpaces(raw) === '*') return fail(ctx, 'a comma-separated list of CIDRs ("*" is not allowed for exclusions)');
  return cidrItems(raw, ctx, 'a comma-separated list of CIDRs ("*" is not allowed for exclusions)');
});

/**
 * Interface names by the kernel's rules (dev_valid_name: 1-15 bytes, not "." or "..", no "/",
 * ":" or white space), narrowed to the characters real interface names use so that no quote,
 * "!" or "#" can reach restore text. A trailing "+" is iptables' wildcard and is kept.
 */
const IFACE = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}$|^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,13}\+$/;

export function isInterfaceName(name: string): boolean {
  return IFACE.test(name) && name !== '.' && name !== '..';
}

export const interfaceList = stringValue((raw, ctx): readonly string[] => {
  const out: string[] = [];
  for (const item of splitList(raw)) {
    if (!isInterfaceName(item)) {
      return fail(
        ctx,
        `a comma-separated list of interface names (1-15 characters: letters, digits, "_", "-", ".", "@"; ${q(item)} is not one)`,
      );
    }
    out.push(item);
  }
  return out;
});

/** POSIX-portable user and group names (as useradd accepts them), at most 32 characters. */
const OWNER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;
const MAX_ID = 4294967294; // (uid_t)-1 is "no id"

export function parseOwnerId(item: string): OwnerId | null {
  if (/^[0-9]{1,10}$/.test(item)) {
    const n = Number(item);
    return n <= MAX_ID ? n : null;
  }
  return OWNER_NAME.test(item) ? item : null;
}

function ownerList(what: 'uid' | 'gid' | 'group') {
  return stringValue((raw, ctx): readonly OwnerId[] => {
    const out: OwnerId[] = [];
    for (const item of splitList(raw)) {
      const id = parseOwnerId(item);
      if (id === null) {
        return fail(
          ctx,
          `a comma-separated list of ${what}s: numbers 0-${MAX_ID} or names of letters, digits, "_", "-", "." (${q(item)} is neither)`,
        );
      }
      out.push(id);
    }
    return out;
  });
}

export const uidList = ownerList('uid');
export const gidList = ownerList('gid');

/** At most this many owner groups: each becomes its own owner match in one rule. */
export const MAX_OWNER_GROUPS = 64;

/** Owner groups: "*" or a list of groups (names or gids); an include list holds at most 64. */
function ownerGroups(max: number | undefined) {
  return stringValue((raw, ctx): OwnerGroups => {
    if (trimSpaces(raw) === '*') return { all: true };
    const items = splitList(raw);
    if (max !== undefined && items.length > max) return fail(ctx, `at most ${max} groups (got ${items.length})`);
    const groups: OwnerId[] = [];
    for (const item of items) {
      const id = parseOwnerId(item);
      if (id === null) {
        return fail(ctx, `"*" or a comma-separated list of groups: gids or names of letters, digits, "_", "-", "." (${q(item)} is neither)`);
      }
      groups.push(id);
    }
    return { all: false, groups };
  });
}

export const ownerGroupsInclude = ownerGroups(MAX_OWNER_GROUPS);
export const ownerGroupsExclude = ownerGroups(undefined);

/**
 * REDIRECT or TPROXY, upper case: Istio compares the mode with "TPROXY" exactly and takes any
 * other word (`tproxy`) as REDIRECT; here it is an error, with the upper-case word as the hint.
 */
export const interceptionMode = choiceValue(['REDIRECT', 'TPROXY'], 'REDIRECT or TPROXY, upper case as Istio reads it', (raw): 'REDIRECT' | 'TPROXY' | typeof NOT_ONE =>
  // Istio's own default for this flag is the empty string, which means REDIRECT.
  raw === '' || raw === 'REDIRECT' ? 'REDIRECT' : raw === 'TPROXY' ? 'TPROXY' : NOT_ONE,
);

/** A 32-bit unsigned number, decimal or 0x-hex; `min` excludes 0 where 0 means "none". */
function uint32(what: string, reserved: ReadonlyMap<number, string> = new Map()) {
  return stringValue((raw, ctx) => {
    const t = trimSpaces(raw);
    const n = /^[0-9]{1,10}$/.test(t) ? Number(t) : /^0[xX][0-9a-fA-F]{1,8}$/.test(t) ? parseInt(t.slice(2), 16) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) return fail(ctx, `${what}: a number 1-4294967295 (decimal or 0x hex)`);
    const why = reserved.get(n);
    if (why !== undefined) return fail(ctx, `${what} other than ${n} (${why})`);
    return n;
  });
}

export const tproxyMark = uint32('a packet mark');
export const routeTable = uint32(
  'a routing table',
  new Map([
    [253, 'the kernel\'s "default" table'],
    [254, 'the "main" table: a local default route there would swallow all traffic'],
    [255, 'the kernel\'s "local" table'],
  ]),
);

/** DNS server addresses by family (canonical text). */
export interface DnsServers {
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
}

/** Nameserver addresses (no prefix, no zone), split per family as Istio does (IPv4-mapped IPv6 stays IPv6). */
export function splitDnsServers(items: readonly ParsedAddress[]): DnsServers {
  return {
    ipv4: items.filter((a) => a.family === 'ipv4').map((a) => a.text),
    ipv6: items.filter((a) => a.family === 'ipv6').map((a) => a.text),
  };
}

export const dnsServers = stringValue((raw, ctx): DnsServers => {
  const parsed: ParsedAddress[] = [];
  for (const item of splitList(raw)) {
    const a = parseAddress(item);
    if (a === null) {
      const cidr = parseCidr(item) === null ? '' : `: a nameserver is an address alone, such as ${item.slice(0, item.indexOf('/'))}`;
      return fail(ctx, `a comma-separated list of IPv4 or IPv6 addresses (${q(item)} is not an address${cidr})`);
    }
    parsed.push(a);
  }
  return splitDnsServers(parsed);
});

/**
 * The IPv4 loopback CIDR, validated as Istio does: a well-formed IPv4 prefix whose address lies
 * in 127.0.0.0/8 and whose length is at least /8, so it never reaches beyond loopback.
 */
export const ipv4LoopbackCidr = stringValue((raw, ctx): Cidr => {
  const t = trimSpaces(raw);
  const c = parseCidr(t);
  if (c === null || c.family !== 'ipv4') return fail(ctx, `an IPv4 CIDR within 127.0.0.0/8, such as 127.0.0.1/32${parseAddress(t)?.family === 'ipv4' ? ` (for that address alone write ${t}/32)` : ''}`);
  if (!c.loopback || c.prefixLength < 8) return fail(ctx, 'an IPv4 CIDR within 127.0.0.0/8, such as 127.0.0.1/32 (prefix /8 or longer)');
  return { family: c.family, address: c.address, prefixLength: c.prefixLength };
});

/** A log level, Istio's names, from quietest to most verbose. */
export type LogLevel = 'none' | 'fatal' | 'error' | 'warn' | 'info' | 'debug';
const LEVELS: readonly LogLevel[] = ['none', 'fatal', 'error', 'warn', 'info', 'debug'];

/**
 * Istio's --log_output_level: "level" or "scope:level,scope:level". We honour the "default" scope,
 * and "all", which Istio applies to every scope.
 */
export const logOutputLevel = stringValue((raw, ctx): LogLevel => {
  let level: LogLevel = 'info';
  for (const item of splitList(raw)) {
    const [scope, lvl, extra] = item.includes(':') ? item.split(':') : ['default', item];
    const known = (LEVELS as readonly string[]).includes(lvl ?? '');
    if (extra !== undefined || !scope || !/^[A-Za-z0-9_.-]+$/.test(scope) || !known) {
      const near = extra === undefined && lvl !== undefined ? closest(lvl, LEVELS) : undefined;
      const hint = near === undefined ? '' : ` (did you mean ${item.includes(':') ? `${scope}:` : ''}${near}?)`;
      return fail(ctx, `a level or comma-separated scope:level pairs, levels ${LEVELS.join(', ')} (${q(item)} is not one)${hint}`);
    }
    if (scope === 'default' || scope === 'all') level = lvl as LogLevel;
  }
  return level;
});

/** Istio's --log_caller: comma-separated scope names (accepted and checked; no caller is printed here). */
export const logCallers = stringValue((raw, ctx): readonly string[] => {
  const scopes = splitList(raw);
  for (const scope of scopes) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(scope)) return fail(ctx, `a comma-separated list of log scopes (letters, digits, "_", "-"; ${q(scope)} is not one)`);
  }
  return scopes;
});

/** Where log lines go (`--log_target`): standard output or standard error. */
export type LogTarget = 'stdout' | 'stderr';

/** One --log_target: where log lines go. Istio also takes file paths; this program writes no files. */
export const logTarget = choiceValue(['stdout', 'stderr'], 'stdout or stderr (log files are not written here)', (raw): LogTarget | typeof NOT_ONE => {
  const t = trimSpaces(raw);
  return t === 'stdout' || t === 'stderr' ? t : NOT_ONE;
});

/** --vklog: the Kubernetes client's log verbosity, an integer as klog parses it (no client here: no effect). */
export const klogLevel = stringValue((raw, ctx) => {
  const t = trimSpaces(raw);
  const n = /^[+-]?[0-9]{1,10}$/.test(t) ? Number(t) : NaN;
  if (!Number.isInteger(n) || n < -2147483648 || n > 2147483647) return fail(ctx, 'an integer verbosity such as 0 or 9');
  return n;
});

const DURATION_UNITS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration (e.g. 5s, 500ms, 1m30s), returned in milliseconds; must be positive. */
export const duration = stringValue((raw, ctx) => {
  const t = trimSpaces(raw);
  const re = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? ''] ?? NaN);
    consumed = re.lastIndex;
  }
  if (t.length === 0 || consumed !== t.length || !(total > 0) || total > 3_600_000) {
    return fail(ctx, 'a positive duration up to 1h, such as 5s, 500ms or 1m30s');
  }
  return total;
});

/** A network namespace: a name under /var/run/netns, or an absolute path. */
export const networkNamespace = stringValue((raw, ctx) => {
  if (raw === '') return undefined;
  if (/^[A-Za-z0-9_.-]{1,255}$/.test(raw) && raw !== '.' && raw !== '..') return raw;
  if (/^\/[A-Za-z0-9_.\/-]{1,4095}$/.test(raw) && !raw.split('/').includes('..')) return raw;
  return fail(ctx, 'a namespace name (letters, digits, "_", "-", ".") or an absolute path such as /proc/1/ns/net');
});

/** An iptables backend: the `-legacy` or the `-nft` binaries. */
export type IptablesBackend = 'legacy' | 'nft';

/** An iptables backend to force, or none ("": detect it). */
export const forceIptablesBinary = choiceValue(
  ['legacy', 'nft', 'iptables-legacy', 'iptables-nft'],
  'legacy or nft (or iptables-legacy, iptables-nft)',
  (raw): IptablesBackend | undefined | typeof NOT_ONE => {
    const t = trimSpaces(raw);
    return t === '' ? undefined : t === 'legacy' || t === 'iptables-legacy' ? 'legacy' : t === 'nft' || t === 'iptables-nft' ? 'nft' : NOT_ONE;
  },
);

/** The format of a dry run's or trace's output. */
export const outputFormat = choiceValue(['text', 'json', 'svg', 'mermaid'], 'text, json, svg or mermaid', (raw): OutputFormat | typeof NOT_ONE =>
  raw === 'text' || raw === 'json' || raw === 'svg' || raw === 'mermaid' ? raw : NOT_ONE,
);

/** What a dry run or trace prints: text, JSON, an SVG picture or a Mermaid flowchart. */
export type OutputFormat = 'text' | 'json' | 'svg' | 'mermaid';

/** Booleans as Go's strconv.ParseBool reads them (flags and env vars alike). */
export const boolean: ValueKind<boolean> = {
  check: (raw, ctx) => {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw !== 'string') return wrongType(ctx);
  if (GO_TRUE.has(raw)) return true;
  if (GO_FALSE.has(raw)) return false;
  return fail(ctx, goBoolExpected(raw));
  },
};

/** Owner groups as --outbound-owner-groups(-exclude) give them: all, or a list. */
export type OwnerGroups = { readonly all: true } | { readonly all: false; readonly groups: readonly OwnerId[] };

/** The kinds of value, by the name the option table gives them, with the typed value each reads. */
export interface ValueTypes {
  port: number;
  portList: readonly number[];
  portRangeList: readonly PortOrRange[];
  inboundPorts: InboundPorts;
  outboundCidrs: OutboundCidrs;
  excludeCidrs: CidrSet;
  interfaceList: readonly string[];
  uidList: readonly OwnerId[];
  gidList: readonly OwnerId[];
  ownerGroupsInclude: OwnerGroups;
  ownerGroupsExclude: OwnerGroups;
  interceptionMode: 'REDIRECT' | 'TPROXY';
  tproxyMark: number;
  routeTable: number;
  dnsServers: DnsServers;
  ipv4LoopbackCidr: Cidr;
  logOutputLevel: LogLevel;
  logCallers: readonly string[];
  logTarget: LogTarget;
  klogLevel: number;
  duration: number;
  networkNamespace: string | undefined;
  forceIptablesBinary: IptablesBackend | undefined;
  outputFormat: OutputFormat;
  boolean: boolean;
}

/** The name of a kind of value. */
export type ValueName = keyof ValueTypes;
/** The typed value a kind of value reads. */
export type ValueOf<N extends ValueName> = ValueTypes[N];

/** Every kind of value, by the name the option table gives it. */
export const VALUES: { readonly [N in ValueName]: ValueKind<ValueTypes[N]> } = {
  port, portList, portRangeList, inboundPorts, outboundCidrs, excludeCidrs, interfaceList, uidList, gidList,
  ownerGroupsInclude, ownerGroupsExclude, interceptionMode, tproxyMark, routeTable, dnsServers, ipv4LoopbackCidr,
  logOutputLevel, logCallers, logTarget, klogLevel, duration, networkNamespace, forceIptablesBinary, outputFormat, boolean,
};

