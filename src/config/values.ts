import { GO_FALSE, GO_TRUE, goBoolExpected } from './gobool.js';
import type { Cidr, OwnerId, PortOrRange } from '../model/rule.js';
import { parseAddress, parseCidr, type ParsedAddress, type ParsedCidr } from './net.js';
import { valueText } from '../errors.js';
import { closest, didYouMean } from '../suggest.js';

/**
 * Value schemas, one per kind of option value. Each takes a value in either of its two forms,
 * exactly as it arrived: the text a flag or environment variable gives (`"80,443"`), or the typed
 * form the library takes (`[80, 443]`, ValueInputs below). It returns the typed value
 * (ValueTypes) or fails with an issue whose message says what was expected. Both forms go
 * through the same item readers (a list's text is split, then each item read as an array's item
 * is), so they accept the same values and give the same result. Nothing downstream ever sees the
 * raw input again.
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

/**
 * A list read item by item: the flag's comma-separated text split as Istio splits it, or the
 * library's array as it is (no splitting, no trimming: an item "80,443" is one bad item, not two
 * ports). The first item `read` refuses (null) fails the value with `expected(list, item)`: `list`
 * names the list in the form it came in, `item` shows the item (an array's item as the caller
 * wrote it, `70000`); a value that is no list at all fails with `expected('a list')`. Null once
 * it failed (the check then returns NEVER).
 */
function readList<T>(raw: unknown, ctx: Ctx, read: (item: unknown) => T | null, expected: (list: string, item?: Bad) => string): T[] | null {
  const text = typeof raw === 'string';
  if (!text && !Array.isArray(raw)) return failed(ctx, expected('a list'));
  const items: readonly unknown[] = text ? splitList(raw) : raw;
  const out: T[] = [];
  for (const item of items) {
    const value = read(item);
    if (value === null) return failed(ctx, expected(text ? 'a comma-separated list' : 'a list', { item, shown: valueText(item) }));
    out.push(value);
  }
  return out;
}

/** An item a list refused, and how messages show it. */
interface Bad {
  readonly item: unknown;
  readonly shown: string;
}

/** `" (<item> <why>)"` after what a list expects, or nothing when the value was no list. */
const because = (bad: Bad | undefined, why: string): string => (bad === undefined ? '' : ` (${bad.shown} ${why})`);

/** A whole number in [min, max]. */
const within = (n: unknown, min: number, max: number): n is number => typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max;

/** What a check gets from zod (its ParsePayload): the input, and the issues to report on it. */
export interface Ctx {
  readonly value: unknown;
  readonly issues: { readonly code: string; readonly message?: string; readonly expected?: string; readonly input: unknown }[];
}

/**
 * What a check returns once it reported an issue (zod's NEVER plays this part): never read, by
 * zod (a value with an issue is refused whatever the transform returned) or by the entrypoint's
 * direct check. Our own, so that values.ts imports nothing of zod: the entrypoint's program then
 * holds none of zod's code (before, importing NEVER kept zod's core module and its start-up
 * side effects, though little of it once tree-shaken: 158 bytes of bytecode).
 */
const NEVER = Object.freeze({ refused: true }) as never;

function fail(ctx: Ctx, message: string): typeof NEVER {
  ctx.issues.push({ code: 'custom', message, input: ctx.value });
  return NEVER;
}

/** Report an issue, for a helper whose caller then returns NEVER. */
function failed(ctx: Ctx, message: string): null {
  fail(ctx, message);
  return null;
}

/**
 * A kind of value (a port, a port list, a CIDR list, ...): its check, which takes the raw value
 * exactly as it arrived and returns the typed value or reports an issue saying what was expected.
 * Each kind becomes a zod schema of its own on first use (schemas.ts schemaOf), and the schemas
 * of the options given one object schema (check.ts); the entrypoint calls the same checks without
 * zod (platform/quickjs/check.ts).
 *
 * A kind is a lone zod transform that checks the input's type itself, rather than a string schema
 * piped into a transform: a pipe costs more to build (in the entrypoint's interpreter ~50 us
 * against ~15 us, measured before it stopped building schemas at all).
 */
export interface ValueKind<T> {
  readonly check: (raw: unknown, ctx: Ctx) => T;
  /** The values it takes when they are a fixed list: --help lists them, shell completion offers them. */
  readonly choices?: readonly string[];
}

/** A kind whose check reads either form itself. */
function kind<T>(check: (raw: unknown, ctx: Ctx) => T): ValueKind<T> {
  return { check };
}

/** A kind whose typed form is a string too (a level, a path): anything else fails with `expected`. */
function stringValue<T>(expected: string, fn: (raw: string, ctx: Ctx) => T): ValueKind<T> {
  return { check: (raw, ctx) => (typeof raw === 'string' ? fn(raw, ctx) : fail(ctx, expected)) };
}

/** What a choice kind's reading gives for a word that is none of its choices. */
const NOT_ONE: unique symbol = Symbol('not one of the choices');

/**
 * A kind taking one of a fixed list of words (`read` gives the typed value of a good one, else
 * NOT_ONE); a bad word gets the nearest choice as a hint, anything but a word what is expected.
 */
function choiceValue<T>(choices: readonly string[], expected: string, read: (raw: string) => T | typeof NOT_ONE): ValueKind<T> {
  return {
    choices,
    check: (raw, ctx) => {
      if (typeof raw !== 'string') return fail(ctx, expected);
      const value = read(raw);
      return value !== NOT_ONE ? value : fail(ctx, `${expected}${didYouMean(trimSpaces(raw), choices)}`);
    },
  };
}

const PORT_EXPECTED = 'a port 1-65535';

export function parsePort(item: string): number | null {
  if (!/^[0-9]{1,5}$/.test(item)) return null;
  const n = Number(item);
  return n >= 1 && n <= 65535 ? n : null;
}

/** A single port, 1-65535: its text or a number. */
export const port = kind((raw, ctx) => {
  const n = typeof raw === 'string' ? parsePort(trimSpaces(raw)) : within(raw, 1, 65535) ? raw : null;
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

/** A port of a list, 0-65535: the item's text or a number. */
function readListPort(item: unknown): number | null {
  if (typeof item === 'string') return parseListPort(item);
  return within(item, 0, 65535) ? item : null;
}

/** A list of ports 0-65535 (may be empty). */
export const portList = kind((raw, ctx): readonly number[] =>
  readList(raw, ctx, readListPort, (list, bad) => `${list} of ports 0-65535${because(bad, 'is not a port')}`) ?? NEVER,
);

/**
 * A list of ports 0-65535 and ranges `first:last` (first <= last), as iptables' `--dport` takes
 * them (-q/-o: Istio renders each item into `--dport` as given, and its injector does not check
 * includeOutboundPorts). A range of one port is that port.
 */
export const portRangeList = kind((raw, ctx): readonly PortOrRange[] =>
  readList(raw, ctx, readPortOrRange, (list, bad) =>
    `${list} of ports 0-65535 or ranges such as ${list === 'a list' ? '{ first: 8000, last: 8080 }' : '8000:8080'}${because(bad, 'is neither')}`,
  ) ?? NEVER,
);

/** A port or a range: its text (`8000:8080`), a number, or `{ first, last }`; first <= last. */
function readPortOrRange(item: unknown): PortOrRange | null {
  let first: number | null;
  let last: number | null;
  if (typeof item === 'string') {
    const colon = item.indexOf(':');
    first = parseListPort(colon < 0 ? item : item.slice(0, colon));
    last = colon < 0 ? first : parseListPort(item.slice(colon + 1));
  } else if (isRecord(item, ['first', 'last'])) {
    first = within(item.first, 0, 65535) ? item.first : null;
    last = within(item.last, 0, 65535) ? item.last : null;
  } else {
    first = last = readListPort(item);
  }
  if (first === null || last === null || first > last) return null;
  return first === last ? first : { first, last };
}

/** A plain object with no keys but these. */
function isRecord<K extends string>(item: unknown, keys: readonly K[]): item is Record<K, unknown> {
  return typeof item === 'object' && item !== null && !Array.isArray(item) && Object.keys(item).every((k) => (keys as readonly string[]).includes(k));
}

/** Inbound ports to capture (`-b`): none, all (`*`) or a list. */
export type InboundPorts =
  | { readonly kind: 'none' }
  | { readonly kind: 'all' }
  | { readonly kind: 'list'; readonly ports: readonly number[] };

/**
 * Inbound ports: "" or an empty array (capture none), "*" (all) or a list. Like Istio, any
 * non-empty text turns capture on.
 */
export const inboundPorts = kind((raw, ctx): InboundPorts => {
  if (raw === '' || (Array.isArray(raw) && raw.length === 0)) return { kind: 'none' };
  if (typeof raw === 'string' && trimSpaces(raw) === '*') return { kind: 'all' };
  const ports = readList(raw, ctx, readListPort, (list, bad) =>
    bad?.item === '*'
      ? `"*" alone, or ${list} of ports 0-65535 ("*" cannot be mixed with ports)`
      : `${list} of ports 0-65535, or "*"${because(bad, 'is not a port')}`,
  );
  return ports === null ? NEVER : { kind: 'list', ports };
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

/**
 * A CIDR: its text (`10.0.0.0/8`), or a Cidr object (`{ family: 'ipv4', address: '10.0.0.0',
 * prefixLength: 8 }`) whose address and length the same parser reads together, and whose family
 * must be the address's.
 */
function readCidr(item: unknown): ParsedCidr | null {
  if (typeof item === 'string') return parseCidr(item);
  if (!isRecord(item, ['family', 'address', 'prefixLength']) || typeof item.address !== 'string' || !within(item.prefixLength, 0, 128)) return null;
  const cidr = parseCidr(`${item.address}/${item.prefixLength}`);
  return cidr !== null && cidr.family === item.family ? cidr : null;
}

/** CIDRs by family; `wildcard` is what is expected when an item is "*". */
function cidrSet(raw: unknown, ctx: Ctx, wildcard: (list: string) => string): CidrSet | null {
  const cidrs = readList(raw, ctx, readCidr, (list, bad) =>
    bad?.item === '*' ? wildcard(list) : `${list} of CIDRs such as 10.0.0.0/8 or fd00::/8${bad === undefined ? '' : ` (${notCidr(bad)})`}`,
  );
  if (cidrs === null) return null;
  const ipv4: Cidr[] = [];
  const ipv6: Cidr[] = [];
  let hasLoopback = false;
  for (const { loopback, ...plain } of cidrs) {
    hasLoopback ||= loopback;
    (plain.family === 'ipv4' ? ipv4 : ipv6).push(plain);
  }
  return { ipv4, ipv6, hasLoopback };
}

/** Why an item is not a CIDR, with the fix when it is a bare address (`10.0.0.1` for `10.0.0.1/32`). */
function notCidr(bad: Bad): string {
  const address = typeof bad.item === 'string' ? parseAddress(bad.item) : null;
  if (address === null) return `${bad.shown} is not a CIDR`;
  return `${bad.shown} is an address, not a CIDR: for that address alone write ${String(bad.item)}/${address.family === 'ipv4' ? 32 : 128}`;
}

/** Outbound include CIDRs: "*" or a list of IPv4/IPv6 CIDRs. */
export const outboundCidrs = kind((raw, ctx): OutboundCidrs => {
  if (typeof raw === 'string' && trimSpaces(raw) === '*') return { kind: 'all' };
  const set = cidrSet(raw, ctx, (list) => `"*" alone, or ${list} of CIDRs ("*" cannot be mixed with CIDRs)`);
  return set === null ? NEVER : { kind: 'list', ...set };
});

/** Outbound exclude CIDRs: a list; "*" is rejected, as Istio does. */
export const excludeCidrs = kind((raw, ctx): CidrSet => {
  const noWildcard = (list: string): string => `${list} of CIDRs ("*" is not allowed for exclusions)`;
  if (typeof raw === 'string' && trimSpaces(raw) === '*') return fail(ctx, noWildcard('a comma-separated list'));
  return cidrSet(raw, ctx, noWildcard) ?? NEVER;
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

export const interfaceList = kind((raw, ctx): readonly string[] =>
  readList(
    raw,
    ctx,
    (item) => (typeof item === 'string' && isInterfaceName(item) ? item : null),
    (list, bad) => `${list} of interface names (1-15 characters: letters, digits, "_", "-", ".", "@"${bad === undefined ? '' : `; ${bad.shown} is not one`})`,
  ) ?? NEVER,
);

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

/** A uid or gid: its text (a number or a name), or a number. */
function readOwnerId(item: unknown): OwnerId | null {
  if (typeof item === 'string') return parseOwnerId(item);
  return within(item, 0, MAX_ID) ? item : null;
}

function ownerList(what: 'uid' | 'gid' | 'group') {
  return kind((raw, ctx): readonly OwnerId[] =>
    readList(raw, ctx, readOwnerId, (list, bad) => `${list} of ${what}s: numbers 0-${MAX_ID} or names of letters, digits, "_", "-", "."${because(bad, 'is neither')}`) ?? NEVER,
  );
}

export const uidList = ownerList('uid');
export const gidList = ownerList('gid');

/** At most this many owner groups: each becomes its own owner match in one rule. */
export const MAX_OWNER_GROUPS = 64;

/** Owner groups: "*" or a list of groups (names or gids); an include list holds at most 64. */
function ownerGroups(max: number | undefined) {
  return kind((raw, ctx): OwnerGroups => {
    if (typeof raw === 'string' && trimSpaces(raw) === '*') return { all: true };
    const count = typeof raw === 'string' ? splitList(raw).length : Array.isArray(raw) ? raw.length : 0;
    if (max !== undefined && count > max) return fail(ctx, `at most ${max} groups (got ${count})`);
    const groups = readList(raw, ctx, readOwnerId, (list, bad) => `"*" or ${list} of groups: gids or names of letters, digits, "_", "-", "."${because(bad, 'is neither')}`);
    return groups === null ? NEVER : { all: false, groups };
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

/** A 32-bit unsigned number other than 0: its text (decimal or 0x-hex) or a number. */
function uint32(what: string, reserved: ReadonlyMap<number, string> = new Map()) {
  return kind((raw, ctx) => {
    let n: unknown = raw;
    if (typeof raw === 'string') {
      const t = trimSpaces(raw);
      n = /^[0-9]{1,10}$/.test(t) ? Number(t) : /^0[xX][0-9a-fA-F]{1,8}$/.test(t) ? parseInt(t.slice(2), 16) : NaN;
    }
    if (!within(n, 1, 0xffffffff)) return fail(ctx, `${what}: a number 1-4294967295${typeof raw === 'string' ? ' (decimal or 0x hex)' : ''}`);
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

export const dnsServers = kind((raw, ctx): DnsServers => {
  const parsed = readList(
    raw,
    ctx,
    (item) => (typeof item === 'string' ? parseAddress(item) : null),
    (list, bad) => {
      const cidr = typeof bad?.item === 'string' && parseCidr(bad.item) !== null ? `: a nameserver is an address alone, such as ${bad.item.slice(0, bad.item.indexOf('/'))}` : '';
      return `${list} of IPv4 or IPv6 addresses${because(bad, `is not an address${cidr}`)}`;
    },
  );
  return parsed === null ? NEVER : splitDnsServers(parsed);
});

/**
 * The IPv4 loopback CIDR, validated as Istio does: a well-formed IPv4 prefix whose address lies
 * in 127.0.0.0/8 and whose length is at least /8, so it never reaches beyond loopback.
 */
export const ipv4LoopbackCidr = kind((raw, ctx): Cidr => {
  const t = typeof raw === 'string' ? trimSpaces(raw) : raw;
  const c = readCidr(t);
  if (c === null || c.family !== 'ipv4') {
    const address = typeof t === 'string' && parseAddress(t)?.family === 'ipv4' ? ` (for that address alone write ${t}/32)` : '';
    return fail(ctx, `an IPv4 CIDR within 127.0.0.0/8, such as 127.0.0.1/32${address}`);
  }
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
export const logOutputLevel = stringValue(`a level (${LEVELS.join(', ')}) or comma-separated scope:level pairs`, (raw, ctx): LogLevel => {
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
export const logCallers = kind((raw, ctx): readonly string[] =>
  readList(
    raw,
    ctx,
    (scope) => (typeof scope === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(scope) ? scope : null),
    (list, bad) => `${list} of log scopes (letters, digits, "_", "-"${bad === undefined ? '' : `; ${bad.shown} is not one`})`,
  ) ?? NEVER,
);

/** Where log lines go (`--log_target`): standard output or standard error. */
export type LogTarget = 'stdout' | 'stderr';

/** One --log_target: where log lines go. Istio also takes file paths; this program writes no files. */
export const logTarget = choiceValue(['stdout', 'stderr'], 'stdout or stderr (log files are not written here)', (raw): LogTarget | typeof NOT_ONE => {
  const t = trimSpaces(raw);
  return t === 'stdout' || t === 'stderr' ? t : NOT_ONE;
});

/** --vklog: the Kubernetes client's log verbosity, an integer as klog parses it (no client here: no effect). */
export const klogLevel = kind((raw, ctx) => {
  const t = typeof raw === 'string' ? trimSpaces(raw) : undefined;
  const n = t === undefined ? raw : /^[+-]?[0-9]{1,10}$/.test(t) ? Number(t) : NaN;
  if (!within(n, -2147483648, 2147483647)) return fail(ctx, 'an integer verbosity such as 0 or 9');
  return n;
});

const DURATION_UNITS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration (e.g. 5s, 500ms, 1m30s) or a number of milliseconds, returned in milliseconds; positive, at most 1h. */
export const duration = kind((raw, ctx) => {
  if (typeof raw !== 'string') {
    return typeof raw === 'number' && raw > 0 && raw <= 3_600_000 ? raw : fail(ctx, 'a positive number of milliseconds up to 3600000 (1h)');
  }
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

const NETNS_EXPECTED = 'a namespace name (letters, digits, "_", "-", ".") or an absolute path such as /proc/1/ns/net';

/** A network namespace: a name under /var/run/netns, or an absolute path. */
export const networkNamespace = stringValue(NETNS_EXPECTED, (raw, ctx) => {
  if (raw === '') return undefined;
  if (/^[A-Za-z0-9_.-]{1,255}$/.test(raw) && raw !== '.' && raw !== '..') return raw;
  if (/^\/[A-Za-z0-9_.\/-]{1,4095}$/.test(raw) && !raw.split('/').includes('..')) return raw;
  return fail(ctx, NETNS_EXPECTED);
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

/** A boolean, or its text as Go's strconv.ParseBool reads it (flags and env vars alike). */
export const boolean = kind((raw, ctx): boolean => {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw !== 'string') return fail(ctx, 'true or false');
  if (GO_TRUE.has(raw)) return true;
  if (GO_FALSE.has(raw)) return false;
  return fail(ctx, goBoolExpected(raw));
});

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

/**
 * The library's typed input for each kind of value (what configFromObject takes for an option of
 * that kind; see docs/library.md): numbers for ports, ids, marks and tables, arrays for lists,
 * literal unions for modes, backends and formats, booleans for switches. Each kind reads the
 * flag's text too, with the same result: the text is how flags and environment variables
 * arrive.
 */
export interface ValueInputs {
  port: number;
  portList: readonly number[];
  portRangeList: readonly PortOrRange[];
  /** `[]` captures none, `'*'` all. */
  inboundPorts: '*' | readonly number[];
  outboundCidrs: '*' | readonly CidrInput[];
  excludeCidrs: readonly CidrInput[];
  interfaceList: readonly string[];
  uidList: readonly OwnerId[];
  gidList: readonly OwnerId[];
  ownerGroupsInclude: '*' | readonly OwnerId[];
  ownerGroupsExclude: readonly OwnerId[];
  interceptionMode: 'REDIRECT' | 'TPROXY';
  tproxyMark: number;
  routeTable: number;
  /** Addresses, no prefix: `['10.96.0.10', 'fd00::a']`. */
  dnsServers: readonly string[];
  ipv4LoopbackCidr: CidrInput;
  /** A level; the text form also takes Istio's `scope:level` pairs. */
  logOutputLevel: LogLevel;
  logCallers: readonly string[];
  logTarget: LogTarget;
  klogLevel: number;
  /** Milliseconds. */
  duration: number;
  /** A name under /var/run/netns, or an absolute path such as /proc/1/ns/net. */
  networkNamespace: string;
  forceIptablesBinary: IptablesBackend;
  outputFormat: OutputFormat;
  boolean: boolean;
}

/** A CIDR as the library takes it: text (`'10.0.0.0/8'`), or parsed (`{ family: 'ipv4', address: '10.0.0.0', prefixLength: 8 }`). */
export type CidrInput = string | Cidr;

/** The name of a kind of value. */
export type ValueName = keyof ValueTypes;
/** The library's typed input of a kind of value. */
export type ValueInput<N extends ValueName> = ValueInputs[N];
/** The typed value a kind of value reads. */
export type ValueOf<N extends ValueName> = ValueTypes[N];

/** Every kind of value, by the name the option table gives it. */
export const VALUES: { readonly [N in ValueName]: ValueKind<ValueTypes[N]> } = {
  port, portList, portRangeList, inboundPorts, outboundCidrs, excludeCidrs, interfaceList, uidList, gidList,
  ownerGroupsInclude, ownerGroupsExclude, interceptionMode, tproxyMark, routeTable, dnsServers, ipv4LoopbackCidr,
  logOutputLevel, logCallers, logTarget, klogLevel, duration, networkNamespace, forceIptablesBinary, outputFormat, boolean,
};

