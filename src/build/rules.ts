import type { Cidr, Family, Match, OwnChain, OwnerId, PortOrRange, Protocol, Rule, Table, Target, Chain } from '../model/rule.js';

/** Small constructors so that each rule in the builders reads like the iptables line it becomes. */
export const m = {
  proto: (protocol: Protocol): Match => ({ kind: 'protocol', protocol }),
  src: (cidr: Cidr): Match => ({ kind: 'source', cidr }),
  dst: (cidr: Cidr): Match => ({ kind: 'destination', cidr, negate: false }),
  notDst: (cidr: Cidr): Match => ({ kind: 'destination', cidr, negate: true }),
  in: (name: string): Match => ({ kind: 'inInterface', name }),
  out: (name: string): Match => ({ kind: 'outInterface', name }),
  dport: (port: number): Match => ({ kind: 'dport', port, negate: false }),
  notDport: (port: number): Match => ({ kind: 'dport', port, negate: true }),
  /** `--dport` for a port or a range. */
  dports: (p: PortOrRange): Match => (typeof p === 'number' ? { kind: 'dport', port: p, negate: false } : { kind: 'dportRange', first: p.first, last: p.last }),
  sport: (port: number): Match => ({ kind: 'sport', port }),
  notDports: (ports: readonly number[]): Match => ({ kind: 'multiportDports', ports, negate: true }),
  uid: (id: OwnerId): Match => ({ kind: 'uidOwner', id, negate: false }),
  notUid: (id: OwnerId): Match => ({ kind: 'uidOwner', id, negate: true }),
  gid: (id: OwnerId): Match => ({ kind: 'gidOwner', id, negate: false }),
  notGid: (id: OwnerId): Match => ({ kind: 'gidOwner', id, negate: true }),
  mark: (mark: number): Match => ({ kind: 'mark', mark, negate: false }),
  notMark: (mark: number): Match => ({ kind: 'mark', mark, negate: true }),
  connmark: (mark: number): Match => ({ kind: 'connmark', mark }),
  ctstate: (...states: ('INVALID' | 'RELATED' | 'ESTABLISHED')[]): Match => ({ kind: 'ctstate', states }),
} as const;

export const t = {
  jump: (chain: OwnChain): Target => ({ kind: 'jump', chain }),
  return: { kind: 'return' } as Target,
  accept: { kind: 'accept' } as Target,
  drop: { kind: 'drop' } as Target,
  redirect: (toPort: number, spelling: '--to-ports' | '--to-port' = '--to-ports'): Target => ({ kind: 'redirect', toPort, spelling }),
  tproxy: (mark: number, onPort: number): Target => ({ kind: 'tproxy', mark, mask: 0xffffffff, onPort }),
  setMark: (mark: number): Target => ({ kind: 'setMark', mark }),
  connmarkSave: { kind: 'connmarkSave' } as Target,
  connmarkRestore: { kind: 'connmarkRestore' } as Target,
  ct: (zone: number): Target => ({ kind: 'ct', zone }),
} as const;

/** Per-family values that appear inside otherwise shared rules. */
export interface FamilyValues {
  readonly family: Family;
  /** The loopback range treated as "localhost" (IPv4: --ipv4-loopback-cidr; IPv6: ::1/128). */
  readonly loopback: Cidr;
  /** Source address of the proxy's inbound passthrough connections (127.0.0.6 / ::6). */
  readonly passthroughSource: Cidr;
}

/**
 * Collects rules in issue order, per family. `both` adds a rule to every enabled family;
 * `ipv4`/`ipv6` to one; `each` builds a family-specific variant for every enabled family.
 */
export class RuleSet {
  readonly ipv4: Rule[] = [];
  readonly ipv6: Rule[] | null;

  constructor(
    enableIpv6: boolean,
    private readonly values: Readonly<Record<Family, FamilyValues>>,
  ) {
    this.ipv6 = enableIpv6 ? [] : null;
  }

  private target(family: Family): Rule[] | null {
    return family === 'ipv4' ? this.ipv4 : this.ipv6;
  }

  appendTo(family: Family, table: Table, chain: Chain, matches: readonly Match[], target: Target): void {
    this.target(family)?.push({ table, chain, op: { kind: 'append' }, matches, target });
  }

  insertTo(family: Family, table: Table, chain: Chain, position: number, matches: readonly Match[], target: Target): void {
    this.target(family)?.push({ table, chain, op: { kind: 'insert', position }, matches, target });
  }

  append(table: Table, chain: Chain, matches: readonly Match[], target: Target): void {
    this.appendTo('ipv4', table, chain, matches, target);
    this.appendTo('ipv6', table, chain, matches, target);
  }

  insert(table: Table, chain: Chain, position: number, matches: readonly Match[], target: Target): void {
    this.insertTo('ipv4', table, chain, position, matches, target);
    this.insertTo('ipv6', table, chain, position, matches, target);
  }

  /** Append a rule whose matches depend on the family (Istio's "versioned" rules). */
  each(table: Table, chain: Chain, matches: (v: FamilyValues) => readonly Match[], target: Target): void {
    this.appendTo('ipv4', table, chain, matches(this.values.ipv4), target);
    this.appendTo('ipv6', table, chain, matches(this.values.ipv6), target);
  }
}
