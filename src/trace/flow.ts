import { parseAddress, type ParsedAddress } from '../config/net.js';
import { isInterfaceName } from '../config/values.js';
import { TraceError, type Expectation, type Flow, type FlowState } from './types.js';

/** A validated flow, the sending process's supplementary groups and the verdict expected, if given. */
export interface FlowInput {
  readonly flow: Flow;
  readonly groups?: readonly number[];
  readonly expect?: Expectation;
}

/**
 * Defaults for what a flow does not say, the same for a flow on the command line, a line of
 * --flows and the library's parsers: the interface of its direction (`--in`, `--out`) and the
 * verdict expected (`--expect`). The source port, when absent, is an ephemeral one (40000).
 */
export interface FlowDefaults {
  readonly inInterface?: string;
  readonly outInterface?: string;
  readonly expect?: Expectation;
}

/** The source port of a flow that gives none: an ephemeral one. */
export const DEFAULT_SPORT = 40000;

const FIELDS = ['direction', 'protocol', 'src', 'sport', 'dst', 'dport', 'uid', 'gid', 'inInterface', 'outInterface', 'mark', 'state', 'groups', 'expect'] as const;
const VERDICTS = ['redirect', 'tproxy', 'pass', 'drop'] as const;

/** `redirect`, `tproxy:15006`, `PASS`: a verdict, and for redirect or tproxy optionally the port. */
export function parseExpectation(text: string, what: string): Expectation {
  const m = /^([A-Za-z]+)(?::([1-9][0-9]{0,4}))?$/.exec(text);
  const verdict = m?.[1]?.toLowerCase();
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  const known = (VERDICTS as readonly string[]).includes(verdict ?? '');
  if (m === null || !known || (port !== undefined && (port > 65535 || verdict === 'pass' || verdict === 'drop'))) {
    throw new TraceError(`${what} ${q(text)} is not a verdict: redirect, tproxy (each optionally :PORT), pass or drop`);
  }
  return port === undefined ? { verdict: verdict as Expectation['verdict'] } : { verdict: verdict as Expectation['verdict'], toPort: port };
}

/** An expectation as written: `tproxy:15006`. */
export function expectationText(e: Expectation): string {
  return e.toPort === undefined ? e.verdict : `${e.verdict}:${e.toPort}`;
}
const MAX_ID = 4294967294;
const MAX_MARK = 0xffffffff;

function q(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

function required(obj: Record<string, unknown>, key: string, what: string): unknown {
  if (obj[key] === undefined) throw new TraceError(`${key} is missing (${what})`);
  return obj[key];
}

function integer(obj: Record<string, unknown>, key: string, min: number, max: number, what: string): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new TraceError(`${key} ${q(v)} is not ${what}`);
  return v;
}

/** An address of a flow, or a TraceError naming it as `what`. */
export function parseFlowAddress(text: string, what: string): ParsedAddress {
  const a = parseAddress(text);
  if (a === null) throw new TraceError(`${what} ${q(text)} is not an IPv4 or IPv6 address`);
  return a;
}

function address(obj: Record<string, unknown>, key: 'src' | 'dst'): ParsedAddress {
  const v = obj[key];
  if (typeof v !== 'string') throw new TraceError(`${key} is missing (an IPv4 or IPv6 address)`);
  return parseFlowAddress(v, key);
}

function iface(obj: Record<string, unknown>, key: 'inInterface' | 'outInterface'): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !isInterfaceName(v) || v.endsWith('+')) throw new TraceError(`${key} ${q(v)} is not an interface name`);
  return v;
}

/** A word of a closed set, in any case (`TCP`, `Inbound`); undefined when it is none of them. */
function oneOf<T extends string>(v: unknown, words: readonly T[]): T | undefined {
  const low = typeof v === 'string' ? v.toLowerCase() : undefined;
  return words.find((w) => w === low);
}

/**
 * Check a flow given as an object (a JSON line, or the human form's fields) and normalize it:
 * words in any case, what it does not say from `defaults` (the source port: 40000).
 */
export function validateFlow(value: unknown, defaults: FlowDefaults = {}): FlowInput {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TraceError('a flow must be a JSON object');
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(FIELDS as readonly string[]).includes(key)) throw new TraceError(`unknown flow field ${q(key)} (known: ${FIELDS.join(', ')})`);
  }
  const rawDirection = required(obj, 'direction', 'inbound or outbound');
  const direction = oneOf(rawDirection, ['inbound', 'outbound'] as const);
  if (direction === undefined) throw new TraceError(`direction ${q(rawDirection)} is not inbound or outbound`);
  const rawProtocol = required(obj, 'protocol', 'tcp or udp');
  const protocol = oneOf(rawProtocol, ['tcp', 'udp'] as const);
  if (protocol === undefined) throw new TraceError(`protocol ${q(rawProtocol)} is not tcp or udp`);
  const src = address(obj, 'src');
  const dst = address(obj, 'dst');
  if (src.family !== dst.family) throw new TraceError(`src ${src.text} and dst ${dst.text} are not of the same family`);
  const sport = integer(obj, 'sport', 1, 65535, 'a port (1-65535)') ?? DEFAULT_SPORT;
  const dport = integer(obj, 'dport', 1, 65535, 'a port (1-65535)');
  if (dport === undefined) throw new TraceError('dport is missing (a port, 1-65535)');
  const uid = integer(obj, 'uid', 0, MAX_ID, 'a uid (0-4294967294)');
  const gid = integer(obj, 'gid', 0, MAX_ID, 'a gid (0-4294967294)');
  const mark = integer(obj, 'mark', 0, MAX_MARK, 'a mark (0-0xffffffff)');
  const given = (key: 'inInterface' | 'outInterface', dir: 'inbound' | 'outbound'): string | undefined => iface(obj, key) ?? (direction === dir ? iface({ [key]: defaults[key] }, key) : undefined);
  const inInterface = given('inInterface', 'inbound');
  const outInterface = given('outInterface', 'outbound');
  const rawExpect = obj['expect'];
  if (rawExpect !== undefined && typeof rawExpect !== 'string') throw new TraceError(`expect ${q(rawExpect)} is not a verdict: redirect, tproxy (each optionally :PORT), pass or drop`);
  const expect = rawExpect === undefined ? defaults.expect : parseExpectation(rawExpect, 'expect');
  const rawState = obj['state'];
  let state: FlowState | undefined;
  if (rawState !== undefined) {
    const up = typeof rawState === 'string' ? rawState.toUpperCase() : '';
    if (up !== 'NEW' && up !== 'ESTABLISHED' && up !== 'INVALID') throw new TraceError(`state ${q(rawState)} is not NEW, ESTABLISHED or INVALID`);
    state = up;
  }
  const rawGroups = obj['groups'];
  let groups: number[] | undefined;
  if (rawGroups !== undefined) {
    if (!Array.isArray(rawGroups) || !rawGroups.every((g) => typeof g === 'number' && Number.isInteger(g) && g >= 0 && g <= MAX_ID)) {
      throw new TraceError(`groups ${q(rawGroups)} is not a list of gids`);
    }
    groups = rawGroups as number[];
  }
  if (direction === 'inbound') {
    for (const key of ['uid', 'gid', 'groups', 'outInterface'] as const) {
      if (obj[key] !== undefined) throw new TraceError(`${key} applies to outbound flows only (an inbound packet has no local sender and arrives on inInterface)`);
    }
  } else if (inInterface !== undefined) {
    throw new TraceError('inInterface applies to inbound flows only (an outbound packet leaves through outInterface)');
  }
  const flow: Flow = {
    direction,
    protocol,
    src: src.text,
    sport,
    dst: dst.text,
    dport,
    ...(uid === undefined ? {} : { uid }),
    ...(gid === undefined ? {} : { gid }),
    ...(inInterface === undefined ? {} : { inInterface }),
    ...(outInterface === undefined ? {} : { outInterface }),
    ...(mark === undefined ? {} : { mark }),
    ...(state === undefined ? {} : { state }),
  };
  return { flow, ...(groups === undefined ? {} : { groups }), ...(expect === undefined ? {} : { expect }) };
}

/** `10.0.0.1:80`, `[fd00::1]:80`, or a bare address (port null). */
function splitHostPort(text: string, what: string): { host: string; port: number | null } {
  const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  let host = text;
  let port: string | undefined;
  if (bracket) {
    host = bracket[1] ?? '';
    port = bracket[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host = '', port] = text.split(':');
  }
  if (parseAddress(host) === null) throw new TraceError(`${what} ${q(text)} is not ADDRESS[:PORT] (IPv6 with a port as [ADDRESS]:PORT)`);
  if (port === undefined) return { host, port: null };
  if (!/^[1-9][0-9]{0,4}$/.test(port) || Number(port) > 65535) throw new TraceError(`${what} ${q(text)} has no valid port (1-65535)`);
  return { host, port: Number(port) };
}

function numberWord(key: string, value: string): number {
  if (!/^(?:0|[1-9][0-9]{0,9}|0x[0-9a-fA-F]{1,8})$/.test(value)) throw new TraceError(`${key}=${q(value)} is not a number`);
  return Number(value);
}

/**
 * The human form: `DIRECTION PROTOCOL SRC[:PORT] [-> | to] DST:PORT [uid=N] [gid=N] [groups=N,N]
 * [mark=N] [in=IFACE] [out=IFACE] [state=new|established|invalid]` (words in any case; the arrow
 * is optional, as an unquoted `->` is a shell redirection).
 */
export function parseFlowWords(words: readonly string[], defaults: FlowDefaults = {}): FlowInput {
  const [direction, protocol, src, ...after] = words;
  const arrow = after[0] === '->' || after[0]?.toLowerCase() === 'to';
  const [dst, ...rest] = arrow ? after.slice(1) : after;
  if (dst === undefined || dst.includes('=')) {
    throw new TraceError(`a flow is DIRECTION PROTOCOL SRC[:PORT] [->] DST:PORT [key=value...], got ${q(words.join(' '))}`);
  }
  const s = splitHostPort(src ?? '', 'source');
  const d = splitHostPort(dst, 'destination');
  if (d.port === null) throw new TraceError(`destination ${q(dst)} needs a port (ADDRESS:PORT, [IPv6]:PORT)`);
  const obj: Record<string, unknown> = { direction, protocol, src: s.host, dst: d.host, dport: d.port };
  if (s.port !== null) obj['sport'] = s.port;
  for (const word of rest) {
    const eq = word.indexOf('=');
    const key = eq > 0 ? word.slice(0, eq) : word;
    const value = word.slice(eq + 1);
    if (eq <= 0) throw new TraceError(`unexpected word ${q(word)} in the flow (key=value: uid, gid, groups, mark, in, out, state)`);
    switch (key) {
      case 'uid':
      case 'gid':
      case 'mark':
        obj[key] = numberWord(key, value);
        break;
      case 'groups':
        obj['groups'] = value === '' ? [] : value.split(',').map((g) => numberWord('groups', g));
        break;
      case 'in':
        obj['inInterface'] = value;
        break;
      case 'out':
        obj['outInterface'] = value;
        break;
      case 'state':
        obj['state'] = value;
        break;
      default:
        throw new TraceError(`unknown flow key ${q(key)} (uid, gid, groups, mark, in, out, state)`);
    }
  }
  return validateFlow(obj, defaults);
}

/** One non-blank line of --flows: its flow, or what is wrong with it. */
export type FlowLine = { readonly line: number; readonly input: FlowInput } | { readonly line: number; readonly error: string };

/**
 * JSON lines: one flow per non-blank line, each checked on its own (a bad line does not stop the
 * others), with its line number.
 */
export function parseFlowLines(text: string, defaults: FlowDefaults = {}): FlowLine[] {
  const out: FlowLine[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      out.push({ line: i + 1, error: 'not JSON' });
      continue;
    }
    try {
      out.push({ line: i + 1, input: validateFlow(value, defaults) });
    } catch (e) {
      if (!(e instanceof TraceError)) throw e;
      out.push({ line: i + 1, error: e.message });
    }
  }
  return out;
}
