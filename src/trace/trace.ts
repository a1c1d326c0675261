import { parseAddress, samePrefix, type ParsedAddress } from '../config/net.js';
import { unhandled, type Cidr, type Family, type FamilyRules, type Match, type OwnerId, type Plan, type Rule, type Table } from '../model/rule.js';
import { chainKey, replayChains } from '../model/replay.js';
import { renderMatch, renderRule } from '../render/restore.js';
import { parseFlowAddress } from './flow.js';
import { traceReason } from './reason.js';
import { TraceError, type Flow, type FlowState, type Hook, type TraceAction, type TraceLanding, type TraceOptions, type TraceResult, type TraceStep, type Verdict } from './types.js';

/**
 * Walk a flow through a plan the way netfilter walks a packet through a freshly programmed
 * namespace: hooks in order, tables by priority at each hook, chains in their final order, NAT on a
 * connection's first packet only, marks and connmarks carried from rule to rule, and locally
 * generated traffic to a local address looping back through lo. Pure: no I/O.
 */

/** Tables at each hook, by priority (raw -300, mangle -150, nat DNAT -100, filter 0, nat SNAT 100). */
const HOOK_TABLES: Readonly<Record<Hook, readonly Table[]>> = {
  PREROUTING: ['raw', 'mangle', 'nat'],
  OUTPUT: ['raw', 'mangle', 'nat', 'filter'],
  FORWARD: ['mangle', 'filter'],
  INPUT: ['mangle', 'filter', 'nat'],
  POSTROUTING: ['mangle', 'nat'],
};

/** Which NAT manipulation the nat table decides at a hook. */
const NAT_MANIP: Partial<Record<Hook, 'dst' | 'src'>> = { PREROUTING: 'dst', OUTPUT: 'dst', INPUT: 'src', POSTROUTING: 'src' };

const DEFAULT_INTERFACE = 'eth0';
const MAX_DEPTH = 32;
const LOOPBACK = { ipv4: '127.0.0.1', ipv6: '::1' } as const;

/** Each chain's rules in the kernel's final order (keyed `table/chain`); an insert iptables-restore would reject is an error. */
export function finalChains(rules: readonly Rule[]): Map<string, Rule[]> {
  return replayChains(rules, (rule) => rule, {
    outOfRange: (rule, length) => {
      const at = rule.op.kind === 'insert' ? rule.op.position : length + 1;
      throw new TraceError(`the plan inserts at position ${at} of ${rule.table} ${rule.chain}, which has ${length} rules: iptables-restore would reject it`);
    },
  });
}

/** Each chain's final order per family's rules: the same for every packet traced through them. */
const chainsOf = new WeakMap<FamilyRules, Map<string, Rule[]>>();

function cachedChains(rules: FamilyRules): Map<string, Rule[]> {
  let chains = chainsOf.get(rules);
  if (chains === undefined) {
    chains = finalChains(rules.rules);
    chainsOf.set(rules, chains);
  }
  return chains;
}

/** Each rule's prefix address, parsed once. */
const cidrAddresses = new WeakMap<Cidr, ParsedAddress | null>();

/** Whether an address lies in a prefix (same family, first prefixLength bits equal). */
function inCidr(addr: ParsedAddress, cidr: Cidr): boolean {
  if (addr.family !== cidr.family) return false;
  let net = cidrAddresses.get(cidr);
  if (net === undefined) {
    net = parseAddress(cidr.address);
    cidrAddresses.set(cidr, net);
  }
  return net !== null && samePrefix(addr, net, cidr.prefixLength);
}

/** iptables interface match: exact, or a prefix when the name ends with "+". */
function interfaceMatches(actual: string, name: string): boolean {
  if (actual === '') return false;
  return name.endsWith('+') ? actual.startsWith(name.slice(0, -1)) : actual === name;
}

interface Socket {
  readonly uid: number | undefined;
  readonly gid: number | undefined;
}

/** The packet as the rules see it, mutated as targets fire. */
interface Packet {
  readonly family: Family;
  readonly protocol: 'tcp' | 'udp';
  src: ParsedAddress;
  sport: number;
  dst: ParsedAddress;
  dport: number;
  inIf: string;
  outIf: string;
  mark: number;
  /** The socket that sent it (locally generated packets before they loop back), else null. */
  socket: Socket | null;
  readonly state: FlowState;
  /** Connection mark; null without a conntrack entry (INVALID). */
  ctmark: number | null;
  /** Whether the conntrack entry is attached yet (the CT target acts only before). */
  ctAttached: boolean;
}

/** A connection's NAT and marks, as its first packet left them. */
interface Connection {
  readonly dnat: { readonly hook: Hook; readonly dst: ParsedAddress; readonly dport: number } | null;
  readonly ctmark: number;
  readonly verdict: Verdict;
  readonly toPort: number | null;
  readonly reason: TraceResult['reason'];
  readonly landing: TraceLanding | null;
}

interface Walk {
  readonly chains: Map<string, Rule[]>;
  readonly opts: TraceOptions;
  readonly local: readonly ParsedAddress[];
  /** The output route of a locally generated packet: its interface. */
  readonly route: (p: Packet) => string;
  readonly path: TraceStep[];
  /** Per step of `path`: the index of the jump that entered its chain (-1 in a built-in chain). */
  readonly parents: number[];
  /** The hooks passed, in order. */
  readonly hooks: Hook[];
  /** The step that dropped the packet, redirected or TPROXYed it (-1: none yet). */
  decider: number;
  /** NAT is consulted: true only for a NEW packet; each manipulation once. */
  readonly natOpen: { dst: boolean; src: boolean };
  /** The established connection's NAT, re-applied where its first packet got it. */
  readonly established: Connection | null;
  /** Set by REDIRECT: its port is the redirect verdict's. */
  dnat: Connection['dnat'];
  tproxyPort: number | null;
}

type ChainEnd = 'fallthrough' | 'return' | 'accept' | 'drop';

function ownerMatches(w: Walk, p: Packet, kind: 'uid' | 'gid', id: OwnerId, negate: boolean): boolean {
  // xt_owner without a full socket: only the negated form matches.
  if (p.socket === null) return negate;
  const actual = kind === 'uid' ? p.socket.uid : p.socket.gid;
  const wanted = typeof id === 'number' ? id : w.opts.resolveOwner?.(id, kind);
  // A name nobody resolves, or an id the flow did not give: it is not this process's id.
  const hit = wanted !== undefined && actual !== undefined && actual === wanted;
  return hit !== negate;
}

function matchOne(w: Walk, p: Packet, x: Match): boolean {
  switch (x.kind) {
    case 'protocol':
      return p.protocol === x.protocol;
    case 'source':
      return inCidr(p.src, x.cidr);
    case 'destination':
      return inCidr(p.dst, x.cidr) !== x.negate;
    case 'inInterface':
      return interfaceMatches(p.inIf, x.name);
    case 'outInterface':
      return interfaceMatches(p.outIf, x.name);
    case 'dport':
      return (p.dport === x.port) !== x.negate;
    case 'dportRange':
      return p.dport >= x.first && p.dport <= x.last;
    case 'sport':
      return p.sport === x.port;
    case 'multiportDports':
      return x.ports.includes(p.dport) !== x.negate;
    case 'uidOwner':
      return ownerMatches(w, p, 'uid', x.id, x.negate);
    case 'gidOwner':
      return ownerMatches(w, p, 'gid', x.id, x.negate);
    case 'mark':
      return (p.mark === x.mark) !== x.negate;
    case 'connmark':
      // xt_connmark: no conntrack entry, no match.
      return p.ctmark !== null && p.ctmark === x.mark;
    case 'ctstate':
      return (x.states as readonly string[]).includes(p.state);
    default:
      return unhandled(x);
  }
}

function localAddress(w: Walk, family: Family, inIf: string): ParsedAddress | null {
  if (inIf === 'lo') return parseAddress(LOOPBACK[family]);
  return w.local.find((a) => a.family === family) ?? null;
}

function walkChain(w: Walk, p: Packet, hook: Hook, table: Table, chain: string, depth: number, via: number): ChainEnd {
  if (depth > MAX_DEPTH) throw new TraceError(`jumps nest deeper than ${MAX_DEPTH} chains at ${table} ${chain}: the plan has a loop`);
  const rules = w.chains.get(chainKey(table, chain)) ?? [];
  for (const [i, rule] of rules.entries()) {
    const failed = rule.matches.find((x) => !matchOne(w, p, x));
    if (failed !== undefined) {
      if (w.opts.verbose === true) {
        w.path.push({ hook, table, chain, position: i + 1, rule: renderRule(rule), action: 'nomatch', failed: renderMatch(failed), why: rule.why });
        w.parents.push(via);
      }
      continue;
    }
    const step = (action: TraceAction): number => {
      w.path.push({ hook, table, chain, position: i + 1, rule: renderRule(rule), action, why: rule.why });
      w.parents.push(via);
      return w.path.length - 1;
    };
    const t = rule.target;
    switch (t.kind) {
      case 'jump': {
        const at = step('jump');
        const end = walkChain(w, p, hook, table, t.chain, depth + 1, at);
        if (end === 'accept' || end === 'drop') return end;
        break;
      }
      case 'return':
        step('return');
        return 'return';
      case 'accept':
        step('accept');
        return 'accept';
      case 'drop':
        w.decider = step('drop');
        return 'drop';
      case 'redirect': {
        // Only reachable in nat, i.e. on a connection's first packet: the DNAT binding is made here.
        w.decider = step('redirect');
        const to = hook === 'OUTPUT' ? parseAddress(LOOPBACK[p.family]) : localAddress(w, p.family, p.inIf);
        if (to !== null) p.dst = to;
        p.dport = t.toPort;
        w.dnat = { hook, dst: p.dst, dport: p.dport };
        return 'accept';
      }
      case 'tproxy':
        // The socket lookup is assumed to find the proxy's transparent listener on the port.
        w.decider = step('tproxy');
        p.mark = ((p.mark & ~t.mask) ^ t.mark) >>> 0;
        w.tproxyPort = t.onPort;
        return 'accept';
      case 'setMark':
        step('mark');
        p.mark = t.mark;
        break;
      case 'connmarkSave':
        step('connmark');
        if (p.ctmark !== null) p.ctmark = p.mark;
        break;
      case 'connmarkRestore':
        step('connmark');
        if (p.ctmark !== null) p.mark = p.ctmark;
        break;
      case 'ct':
        // xt_CT only templates a packet that has no conntrack entry yet (e.g. not on lo's way back).
        step(p.ctAttached ? 'continue' : 'ct');
        break;
      default:
        unhandled(t);
    }
  }
  return 'fallthrough';
}

/** One hook: each of its tables in priority order. Returns false when the packet is dropped. */
function runHook(w: Walk, p: Packet, hook: Hook): boolean {
  w.hooks.push(hook);
  for (const table of HOOK_TABLES[hook]) {
    if (table === 'nat') {
      const manip = NAT_MANIP[hook];
      if (manip === undefined) continue;
      if (!w.natOpen[manip]) {
        // A later packet: the binding its connection got at this hook applies, no rule is read.
        const d = w.established?.dnat;
        if (manip === 'dst' && d && d.hook === hook) {
          p.dst = d.dst;
          p.dport = d.dport;
          if (hook === 'OUTPUT') p.outIf = 'lo';
        }
        continue;
      }
      w.natOpen[manip] = false;
    }
    const before = p.mark;
    // Built-in chains end in their policy (ACCEPT), as RETURN does there.
    if (walkChain(w, p, hook, table, hook, 0, -1) === 'drop') return false;
    if (table === 'raw') p.ctAttached = true;
    // mangle OUTPUT changing the mark reroutes (ip_route_me_harder): a TPROXY fwmark rule
    // sends the packet to the local table, i.e. out through lo.
    if (hook === 'OUTPUT' && table === 'mangle' && p.mark !== before) p.outIf = w.route(p);
    // nat OUTPUT redirecting to loopback reroutes too.
    if (hook === 'OUTPUT' && table === 'nat' && w.dnat !== null) p.outIf = 'lo';
  }
  if (hook === 'PREROUTING' || hook === 'OUTPUT') p.ctAttached = true;
  return true;
}

function isLocal(local: readonly ParsedAddress[], a: ParsedAddress): boolean {
  if (a.loopback) return true;
  return local.some((l) => l.family === a.family && l.text === a.text);
}

/** What every packet of a flow shares: its addresses, and the plan's rules and routes for its family. */
interface FlowSetup {
  readonly family: Family;
  readonly src: ParsedAddress;
  readonly dst: ParsedAddress;
  readonly chains: Map<string, Rule[]>;
  readonly local: readonly ParsedAddress[];
  /** Marks the plan's fwmark rules send to the local table (none when the family is disabled). */
  readonly fwmarks: readonly number[];
}

function flowSetup(plan: Plan, flow: Flow, opts: TraceOptions): FlowSetup {
  const src = parseFlowAddress(flow.src, 'source address');
  const dst = parseFlowAddress(flow.dst, 'destination address');
  if (src.family !== dst.family) throw new TraceError(`source ${src.text} and destination ${dst.text} are of different families`);
  const family = src.family;
  const rules = family === 'ipv4' ? plan.ipv4 : plan.ipv6;
  const local = (opts.localAddresses ?? []).map((t) => parseFlowAddress(t, 'local address'));
  // Addresses the plan's routing puts on lo (::6) are local as well.
  for (const r of plan.routes) if (r.kind === 'loopbackAddress' && r.family === family) local.push(parseFlowAddress(r.cidr.address, 'local address'));
  const fwmarks = rules === null ? [] : plan.routes.flatMap((r) => (r.kind === 'fwmarkRule' && r.family === family ? [r.mark] : []));
  // IPv6 disabled: no rule of ours applies.
  return { family, src, dst, chains: rules === null ? new Map() : cachedChains(rules), local, fwmarks };
}

/** Walk one packet; `connection` is set for a later packet of an established connection. */
function walkPacket(plan: Plan, setup: FlowSetup, flow: Flow, opts: TraceOptions, connection: Connection | null): { result: TraceResult; connection: Connection } {
  const { local, fwmarks } = setup;
  const state = flow.state ?? 'NEW';
  const w: Walk = {
    chains: setup.chains,
    opts,
    local,
    // A local destination, or a mark the TPROXY fwmark rule sends to the local table: lo.
    route: (pk) => (isLocal(local, pk.dst) || fwmarks.includes(pk.mark) ? 'lo' : (flow.outInterface ?? DEFAULT_INTERFACE)),
    path: [],
    parents: [],
    hooks: [],
    decider: -1,
    natOpen: { dst: state === 'NEW', src: state === 'NEW' },
    established: connection,
    dnat: null,
    tproxyPort: null,
  };
  const p: Packet = {
    family: setup.src.family,
    protocol: flow.protocol,
    src: setup.src,
    sport: flow.sport,
    dst: setup.dst,
    dport: flow.dport,
    inIf: '',
    outIf: '',
    mark: flow.mark ?? 0,
    socket: null,
    state,
    ctmark: state === 'INVALID' ? null : (connection?.ctmark ?? 0),
    ctAttached: false,
  };

  const delivered = ((): boolean => {
    if (flow.direction === 'inbound') {
      p.inIf = flow.inInterface ?? DEFAULT_INTERFACE;
      // Inbound flows are addressed to the pod: routed for local delivery.
      return runHook(w, p, 'PREROUTING') && runHook(w, p, 'INPUT');
    }
    p.socket = { uid: flow.uid, gid: flow.gid };
    p.outIf = flow.outInterface ?? w.route(p);
    if (!runHook(w, p, 'OUTPUT') || !runHook(w, p, 'POSTROUTING')) return false;
    if (p.outIf !== 'lo') return true;
    // Back in through lo: the socket is orphaned, the mark and the conntrack entry stay, and both
    // NAT manipulations were settled on the way out (nat PREROUTING and INPUT are not consulted).
    p.socket = null;
    p.inIf = 'lo';
    p.outIf = '';
    w.natOpen.dst = false;
    w.natOpen.src = false;
    return runHook(w, p, 'PREROUTING') && runHook(w, p, 'INPUT');
  })();

  let verdict: Verdict;
  let toPort: number | null;
  if (!delivered) [verdict, toPort] = ['drop', null];
  else if (connection !== null) [verdict, toPort] = [connection.verdict, connection.toPort];
  // TPROXY assigns the socket; a REDIRECT elsewhere on the path cannot take it away.
  else if (w.tproxyPort !== null) [verdict, toPort] = ['tproxy', w.tproxyPort];
  else if (w.dnat !== null) [verdict, toPort] = ['redirect', w.dnat.dport];
  else [verdict, toPort] = ['pass', null];
  const reason = connection?.reason ?? traceReason(plan, flow, setup.family, verdict, w.path, w.parents, w.decider);
  const landing = connection?.landing ?? (delivered ? landingOf(setup, flow, w) : null);
  return {
    result: { verdict, toPort, reason, landing, hooks: w.hooks, path: w.path },
    connection: { dnat: w.dnat, ctmark: p.ctmark ?? 0, verdict, toPort, reason, landing },
  };
}

/** Where a connection's first packet lands: after REDIRECT at the proxy's port, else as addressed (TPROXY keeps it). */
function landingOf(setup: FlowSetup, flow: Flow, w: Walk): TraceLanding {
  const peer = { address: setup.src.text, port: flow.sport };
  if (w.tproxyPort === null && w.dnat !== null) return { local: { address: w.dnat.dst.text, port: w.dnat.dport }, peer };
  return { local: { address: setup.dst.text, port: flow.dport }, peer };
}

/**
 * Trace a flow through a plan: which rules match, in the order netfilter meets them, and what
 * becomes of the connection. For an ESTABLISHED packet the connection's first packet is walked
 * first (unrecorded) to learn its NAT binding, connmark and destination.
 */
export function traceFlow(plan: Plan, flow: Flow, opts: TraceOptions = {}): TraceResult {
  for (const [name, port] of [['source port', flow.sport], ['destination port', flow.dport]] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TraceError(`${name} ${port} is not a port (1-65535)`);
  }
  const setup = flowSetup(plan, flow, opts);
  if (flow.state === 'ESTABLISHED') {
    const first = walkPacket(plan, setup, { ...flow, state: 'NEW' }, { ...opts, verbose: false }, null);
    return walkPacket(plan, setup, flow, opts, first.connection).result;
  }
  return walkPacket(plan, setup, flow, opts, null).result;
}
