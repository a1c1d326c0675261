import type { OptionKey } from '../config/options.js';
import type { Chain, Cidr, Family, Match, Operation, OptionUse, OwnChain, OwnerId, PortOrRange, Protocol, Provenance, Rule, RuleFamily, Table, Target } from '../model/rule.js';

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

/**
 * Why a rule exists: its purpose, and the option values that made it (`use`). Each builder call
 * passes one, so every rule of a plan says where it comes from.
 */
export const because = (purpose: string, ...options: OptionUse[]): Provenance => ({ purpose, options });

/** An option value behind a rule: the option's key and the value as the flag takes it. */
export function use(key: OptionKey, value: string | number | boolean | PortOrRange | Cidr): OptionUse {
  let text: string;
  if (typeof value === 'object') text = 'address' in value ? `${value.address}/${value.prefixLength}` : `${value.first}:${value.last}`;
  else text = String(value);
  return { key, value: text };
}

/** Per-family values that appear inside otherwise shared rules. */
export interface FamilyValues {
  readonly family: Family;
  /** The loopback range treated as "localhost" (IPv4: --ipv4-loopback-cidr; IPv6: ::1/128). */
  readonly loopback: Cidr;
  /** Source address of the proxy's inbound passthrough connections (127.0.0.6 / ::6). */
  readonly passthroughSource: Cidr;
}

const APPEND: Operation = { kind: 'append' };

/**
 * Collects the plan's rules in issue order, each with its family. `append`/`insert` add a rule
 * shared by both families; `appendTo`/`insertTo` one for a family (or `both`); `appendFor` one
 * for the families that need it; `each` a family-specific variant per family, side by side.
 * Rules of a disabled IPv6 are not added.
 */
export class RuleSet {
  readonly rules: Rule[] = [];

  constructor(
    private readonly enableIpv6: boolean,
    private readonly values: Readonly<Record<Family, FamilyValues>>,
  ) {}

  private add(family: RuleFamily, table: Table, chain: Chain, op: Operation, matches: readonly Match[], target: Target, why: Provenance): void {
    if (family === 'ipv6' && !this.enableIpv6) return;
    this.rules.push({ family, table, chain, op, matches, target, why });
  }

  appendTo(family: RuleFamily, table: Table, chain: Chain, matches: readonly Match[], target: Target, why: Provenance): void {
    this.add(family, table, chain, APPEND, matches, target, why);
  }

  insertTo(family: RuleFamily, table: Table, chain: Chain, position: number, matches: readonly Match[], target: Target, why: Provenance): void {
    this.add(family, table, chain, { kind: 'insert', position }, matches, target, why);
  }

  append(table: Table, chain: Chain, matches: readonly Match[], target: Target, why: Provenance): void {
    this.add('both', table, chain, APPEND, matches, target, why);
  }

  insert(table: Table, chain: Chain, position: number, matches: readonly Match[], target: Target, why: Provenance): void {
    this.insertTo('both', table, chain, position, matches, target, why);
  }

  /** Append one rule for the families that need it: shared when both do, else that family's, else none. */
  appendFor(needs: Readonly<Record<Family, boolean>>, table: Table, chain: Chain, matches: readonly Match[], target: Target, why: Provenance): void {
    const family: RuleFamily | undefined = needs.ipv4 ? (needs.ipv6 ? 'both' : 'ipv4') : needs.ipv6 ? 'ipv6' : undefined;
    if (family !== undefined) this.appendTo(family, table, chain, matches, target, why);
  }

  /**
   * Append a rule whose matches depend on the family (Istio's "versioned" rules): IPv4's, then
   * IPv6's; `why` may depend on the family too (IPv4's loopback range is an option, IPv6's is not).
   */
  each(table: Table, chain: Chain, matches: (v: FamilyValues) => readonly Match[], target: Target, why: Provenance | ((v: FamilyValues) => Provenance)): void {
    const whyOf = (v: FamilyValues): Provenance => (typeof why === 'function' ? why(v) : why);
    this.appendTo('ipv4', table, chain, matches(this.values.ipv4), target, whyOf(this.values.ipv4));
    if (this.enableIpv6) this.appendTo('ipv6', table, chain, matches(this.values.ipv6), target, whyOf(this.values.ipv6));
  }
}
