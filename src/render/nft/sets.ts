import { cidrText, parseAddress } from '../../config/net.js';
import type { Chain, Cidr, Family, Protocol, Rule, Target } from '../../model/rule.js';
import { replayChains } from '../../model/replay.js';
import { matchStatements, targetStatements, unsafe, type NftMatch, type NftTable } from './statements.js';

/*
 * --nft-sets: one rule with an anonymous set where Istio writes one rule per value.
 *
 * Works on the final contents of each chain (the script's adds and inserts played out), so it
 * never depends on the order the script happens to issue rules in:
 *  1. A rule's *value* is its one non-negated destination prefix, or else its one non-negated
 *     destination port; the rest of the rule (every other statement, protocol, family, action) is
 *     its *key*. Rules with the same key may share a set.
 *  2. Walking a chain in order, a rule joins the latest earlier group of its key when it can be
 *     moved back to it: past every rule in between, each of which must commute with it (same action
 *     that settles the packet, see `settles`, or no packet can match both: different family,
 *     protocol, port or a disjoint prefix). Rules of one run (`-x a,b,c`) are adjacent already;
 *     Istio's alternating rules (`-o`: tcp then udp per port; TPROXY `-b`: divert then tproxy per
 *     port) are disjoint by protocol or port, so each kind still becomes one set.
 *  3. Merging `r(a); r(b)` into `r({a, b})` is exact when no packet matches both (different ports,
 *     disjoint prefixes) or when the action settles the packet (then matching twice is matching
 *     once). Prefixes covered by another of the same set are dropped (nft rejects overlapping
 *     intervals in an anonymous set on some versions and merges them on others; dropping them
 *     makes every version load the same set). When the action does not settle the packet, an
 *     overlapping prefix keeps a rule of its own.
 *  4. Each set rule is written where the first of its rules was written, with insert indexes

/** One plan rule as the script writes it: the rule and its statements. */
export interface Item {
  readonly rule: Rule;
  /** The statements after the chain (and index): matches, counter, action. */
  readonly body: string;
}

/** The one value a rule may share a set over, and where it sits among the rule's matches. */
type SetValue = { readonly kind: 'addr'; readonly at: number; readonly cidr: Cidr } | { readonly kind: 'port'; readonly at: number; readonly port: number };

function setValueOf(rule: Rule): SetValue | undefined {
  const addrs: SetValue[] = [];
  const ports: SetValue[] = [];
  rule.matches.forEach((x, at) => {
    if (x.kind === 'destination' && !x.negate) addrs.push({ kind: 'addr', at, cidr: x.cidr });
    if (x.kind === 'dport' && !x.negate) ports.push({ kind: 'port', at, port: x.port });
  });
  if (addrs.length === 1) return addrs[0];
  if (addrs.length === 0 && ports.length === 1 && !rule.matches.some((x) => x.kind === 'multiportDports')) return ports[0];
  return undefined;
}

const FAMILY_BITS: Readonly<Record<Family, number>> = { ipv4: 32, ipv6: 128 };

/** A prefix as a number with its host bits cleared, for containment tests. */
function network(c: Cidr): bigint {
  const a = parseAddress(c.address);
  if (a === null || a.family !== c.family) unsafe('address', cidrText(c));
  const width = BigInt(c.family === 'ipv4' ? 8 : 16);
  let n = 0n;
  for (const part of a.parts) n = (n << width) | BigInt(part);
  const host = BigInt(FAMILY_BITS[c.family] - c.prefixLength);
  return (n >> host) << host;
}

/** Whether prefix `outer` contains prefix `inner` (a prefix contains itself). */
function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefixLength > inner.prefixLength) return false;
  const host = BigInt(FAMILY_BITS[outer.family] - outer.prefixLength);
  return network(inner) >> host === network(outer) >> host;
}

const overlap = (a: Cidr, b: Cidr): boolean => contains(a, b) || contains(b, a);

/**
 * The prefixes of one set with those covered by another dropped (of equal ones, the first kept),
 * in their order. Linear in the set size times the number of distinct prefix lengths.
 */
export function coverFree(cidrs: readonly Cidr[]): Cidr[] {
  const key = (family: Family, net: bigint, length: number): string => `${family}/${length}/${(net >> BigInt(FAMILY_BITS[family] - length)).toString(16)}`;
  const nets = cidrs.map(network);
  const first = new Map<string, number>();
  const lengths: Record<Family, Set<number>> = { ipv4: new Set(), ipv6: new Set() };
  cidrs.forEach((c, i) => {
    const k = key(c.family, nets[i] as bigint, c.prefixLength);
    if (!first.has(k)) first.set(k, i);
    lengths[c.family].add(c.prefixLength);
  });
  return cidrs.filter((c, i) => {
    const net = nets[i] as bigint;
    if (first.get(key(c.family, net, c.prefixLength)) !== i) return false;
    for (const length of lengths[c.family]) if (length < c.prefixLength && first.has(key(c.family, net, length))) return false;
    return true;
  });
}

/**
 * Actions that settle a packet whichever way it goes on: verdicts, a NAT redirect, TPROXY (final);
 * a jump settles when its chain does (`settles`). Every target kind says which it is.
 */
const SETTLING: Readonly<Record<Target['kind'], boolean>> = {
  return: true,
  accept: true,
  drop: true,
  redirect: true,
  tproxy: true,
  jump: false,
  setMark: false,
  connmarkSave: false,
  connmarkRestore: false,
  ct: false,
};

/** Chains whose rules never change a packet and return from it: only settling or returning actions. */
function pureChains(items: readonly Item[]): Set<Chain> {
  const rulesOf = new Map<Chain, Target[]>();
  for (const { rule } of items) {
    const targets = rulesOf.get(rule.chain) ?? [];
    rulesOf.set(rule.chain, targets);
    targets.push(rule.target);
  }
  const pure = new Set<Chain>(rulesOf.keys());
  for (let changed = true; changed; ) {
    changed = false;
    for (const [chain, targets] of rulesOf) {
      if (!pure.has(chain)) continue;
      const ok = targets.every((t) => SETTLING[t.kind] || (t.kind === 'jump' && (pure.has(t.chain) || !rulesOf.has(t.chain))));
      if (!ok) {
        pure.delete(chain);
        changed = true;
      }
    }
  }
  return pure;
}

/**
 * Whether an action settles a packet the same way however many of a run of rules with it match:
 * a verdict (return, accept, drop), a NAT redirect or TPROXY (final), or a jump to a chain that
 * either settles the packet or returns it unchanged.
 */
function settles(target: Target, pure: ReadonlySet<Chain>): boolean {
  return SETTLING[target.kind] || (target.kind === 'jump' && pure.has(target.chain));
}

/** What a rule says about the packets it can match, for telling two rules apart. */
interface Facts {
  readonly family: Family | undefined;
  readonly protocol: Protocol | undefined;
  readonly ports: readonly number[] | undefined;
  readonly dst: Cidr | undefined;
}

function factsOf(rule: Rule): Facts {
  let family: Family | undefined;
  let protocol: Protocol | undefined;
  let ports: number[] | undefined;
  let dst: Cidr | undefined;
  for (const x of rule.matches) {
    if (x.kind === 'source' || x.kind === 'destination') family = x.cidr.family;
    if (x.kind === 'destination' && !x.negate) dst = x.cidr;
    if (x.kind === 'protocol') protocol = x.protocol;
    if (x.kind === 'dport' && !x.negate) ports = [x.port];
    if (x.kind === 'multiportDports' && !x.negate) ports = [...x.ports];
  }
  return { family, protocol, ports, dst };
}

/**
 * No packet can match both rules: different families or protocols, or both name destination
 * ports or prefixes and none is shared. (These fields are never changed by a rule that lets the
 * packet go on, so the order of the two rules cannot matter either.)
 */
function disjoint(a: Facts, b: Facts): boolean {
  if (a.family !== undefined && b.family !== undefined && a.family !== b.family) return true;
  if (a.protocol !== undefined && b.protocol !== undefined && a.protocol !== b.protocol) return true;
  if (a.ports !== undefined && b.ports !== undefined && a.protocol === b.protocol && !a.ports.some((p) => b.ports?.includes(p))) return true;
  return a.dst !== undefined && b.dst !== undefined && !overlap(a.dst, b.dst);
}

interface SetMember {
  readonly item: Item;
  readonly value: SetValue | undefined;
  readonly key: string | undefined;
  readonly verdict: string;
  readonly settles: boolean;
  readonly facts: Facts;
}

/** One rule of the merged chain: one plan rule, or several sharing a set. */
interface SetUnit {
  readonly members: SetMember[];
}

function setMember(table: NftTable, item: Item, pure: ReadonlySet<Chain>): SetMember {
  const { rule } = item;
  const value = setValueOf(rule);
  const verdict = targetStatements(rule.target, rule.family).join(' ');
  let key: string | undefined;
  if (value !== undefined) {
    const others = rule.matches.filter((_, i) => i !== value.at);
    const protocol = rule.matches.find((x) => x.kind === 'protocol');
    const family = value.kind === 'addr' ? value.cidr.family : '-';
    key = [value.kind, family, protocol?.kind === 'protocol' ? protocol.protocol : '-', ...matchStatements(table, rule.chain, others), '|', verdict].join(' ');
  }
  return { item, value, key, verdict, settles: settles(rule.target, pure), facts: factsOf(rule) };
}

/** Rule `x` may move back past `unit` (in either order, the same packets get the same outcome). */
function commutes(unit: SetUnit, x: SetMember): boolean {
  const first = unit.members[0] as SetMember;
  if (first.settles && x.settles && first.verdict === x.verdict) return true;
  return unit.members.every((m) => disjoint(m.facts, x.facts));
}

/** Rule `x` may share `unit`'s set: same key, and no packet matches two of them unless that is harmless. */
function canJoin(unit: SetUnit, x: SetMember): boolean {
  const first = unit.members[0] as SetMember;
  if (first.key === undefined || first.key !== x.key) return false;
  if (x.settles) return true;
  return unit.members.every((m) => disjoint(m.facts, x.facts));
}

/** The statements of a unit: its one rule's, or the first rule's with the value turned into a set. */
function unitBody(table: NftTable, unit: SetUnit): string {
  const first = unit.members[0] as SetMember;
  const value = first.value;
  if (unit.members.length === 1 || value === undefined) return first.item.body;
  const rule = first.item.rule;
  let replacement: NftMatch;
  if (value.kind === 'addr') {
    const cidrs = coverFree(unit.members.flatMap((m) => (m.value?.kind === 'addr' ? [m.value.cidr] : [])));
    replacement = cidrs.length === 1 ? { kind: 'destination', cidr: cidrs[0] as Cidr, negate: false } : { kind: 'destinationSet', family: value.cidr.family, cidrs };
  } else {
    const ports = [...new Set(unit.members.flatMap((m) => (m.value?.kind === 'port' ? [m.value.port] : [])))];
    replacement = ports.length === 1 ? { kind: 'dport', port: ports[0] as number, negate: false } : { kind: 'multiportDports', ports, negate: false };
  }
  const matches = rule.matches.map((x, i): NftMatch => (i === value.at ? replacement : x));
  return [...matchStatements(table, rule.chain, matches), ...targetStatements(rule.target, rule.family)].join(' ');
}

/** The set-rendered rule lines of one table, in script order (see the comment above). */
export function withSets(table: NftTable, items: readonly Item[], outOfRange: (item: Item) => void): { chain: Chain; index: number | undefined; body: string; rules: Rule[] }[] {
  // The final order of each chain, as nft builds it from the script (inserts past the end append).
  const chains = replayChains(items, (item) => item.rule, { outOfRange });
  const pure = pureChains(items);
  const unitOf = new Map<Item, { unit: SetUnit; rank: number }>();
  for (const list of chains.values()) {
    const units: SetUnit[] = [];
    for (const item of list) {
      const x = setMember(table, item, pure);
      let placed = false;
      if (x.key !== undefined) {
        for (let i = units.length - 1; i >= 0; i--) {
          const unit = units[i] as SetUnit;
          if (canJoin(unit, x)) {
            unit.members.push(x);
            placed = true;
            break;
          }
          if (!commutes(unit, x)) break;
        }
      }
      if (!placed) units.push({ members: [x] });
    }
    units.forEach((unit, rank) => {
      for (const m of unit.members) unitOf.set(m.item, { unit, rank });
    });
  }
  // Each unit where its first rule was written; the index is its rank among the chain's rules so far.
  const written = new Map<Chain, number[]>();
  const done = new Set<SetUnit>();
  const out: { chain: Chain; index: number | undefined; body: string; rules: Rule[] }[] = [];
  for (const item of items) {
    const { unit, rank } = unitOf.get(item) as { unit: SetUnit; rank: number };
    if (done.has(unit)) continue;
    done.add(unit);
    const ranks = written.get(item.rule.chain) ?? [];
    written.set(item.rule.chain, ranks);
    const before = ranks.filter((r) => r < rank).length;
    out.push({ chain: item.rule.chain, index: before < ranks.length ? before : undefined, body: unitBody(table, unit), rules: unit.members.map((m) => m.item.rule) });
    ranks.push(rank);
  }
  return out;
}
