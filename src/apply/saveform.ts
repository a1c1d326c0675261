import type { Cidr, FamilyRules, Match, OwnerId, Rule, Table, Target } from '../model/rule.js';
import { BUILTIN_CHAINS } from '../model/rule.js';
import { longestZeroRun, parseIpv4, parseIpv6 } from '../config/net.js';
import { targetTokens as writtenTarget } from '../render/restore.js';

/**
 * The kernel's view of our rules: each rule as `iptables-save` prints it once loaded (addresses
 * masked and in inet_ntop form, implicit `-m tcp`, marks in hex, targets with all their options,
 * owner names as numbers). Comparing this with a live dump tells, without running iptables per
 * rule, whether a namespace holds exactly our rules. Pure; kernel tests pin it against real dumps.
 */

/** Resolves user and group names to ids (as iptables does when rules load). */
export interface OwnerResolver {
  uid(name: string): number | undefined;
  gid(name: string): number | undefined;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** glibc inet_ntop for IPv6: RFC 5952 compression, dotted tail for IPv4-compatible and -mapped. */
export function inetNtop6(groups: readonly number[]): string {
  const run = longestZeroRun(groups);
  const bestLen = run.length;
  const bestStart = bestLen < 2 ? -1 : run.start;
  const dotted = bestStart === 0 && (bestLen === 6 || (bestLen === 5 && groups[5] === 0xffff));
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestStart >= 0 && i >= bestStart && i < bestStart + bestLen) {
      if (i === bestStart) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (dotted && i === 6) {
      const a = groups[6] ?? 0;
      const b = groups[7] ?? 0;
      out += `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
      break;
    }
    out += (groups[i] ?? 0).toString(16);
  }
  if (bestStart >= 0 && bestStart + bestLen === 8) out += ':';
  return out;
}

/** A prefix as iptables prints it: host bits cleared. */
export function savedCidr(cidr: Cidr): string {
  if (cidr.family === 'ipv4') {
    const b = parseIpv4(cidr.address) ?? [0, 0, 0, 0];
    const value = b.reduce((acc, x) => acc * 256 + x, 0);
    const mask = cidr.prefixLength === 0 ? 0 : (0xffffffff << (32 - cidr.prefixLength)) >>> 0;
    const masked = (value & mask) >>> 0;
    return `${[24, 16, 8, 0].map((s) => (masked >>> s) & 255).join('.')}/${cidr.prefixLength}`;
  }
  const g = parseIpv6(cidr.address) ?? new Array<number>(8).fill(0);
  const masked = g.map((word, i) => {
    const bits = Math.max(0, Math.min(16, cidr.prefixLength - i * 16));
    return bits === 0 ? 0 : word & ((0xffff << (16 - bits)) & 0xffff);
  });
  return `${inetNtop6(masked)}/${cidr.prefixLength}`;
}

function ownerId(id: OwnerId, kind: 'uid' | 'gid', owners: OwnerResolver): string {
  if (typeof id === 'number') return String(id);
  const n = kind === 'uid' ? owners.uid(id) : owners.gid(id);
  // An unknown name cannot load at all; keep it so the difference is visible.
  return n === undefined ? id : String(n);
}

/** Targets whose saved form differs from how we write them; the rest print as written. */
function targetTokens(t: Target, family: 'ipv4' | 'ipv6'): string[] {
  switch (t.kind) {
    case 'redirect':
      return ['-j', 'REDIRECT', '--to-ports', String(t.toPort)];
    case 'tproxy':
      return ['-j', 'TPROXY', '--on-port', String(t.onPort), '--on-ip', family === 'ipv4' ? '0.0.0.0' : '::', '--tproxy-mark', `${hex(t.mark)}/${hex(t.mask)}`];
    case 'setMark':
      return ['-j', 'MARK', '--set-xmark', `${hex(t.mark)}/0xffffffff`];
    case 'connmarkSave':
      return ['-j', 'CONNMARK', '--save-mark', '--nfmask', '0xffffffff', '--ctmask', '0xffffffff'];
    case 'connmarkRestore':
      return ['-j', 'CONNMARK', '--restore-mark', '--nfmask', '0xffffffff', '--ctmask', '0xffffffff'];
    default:
      return writtenTarget(t);
  }
}

/** The rule's specification (matches and target) as iptables-save prints it, without `-A CHAIN`. */
export function savedSpec(rule: Rule, family: 'ipv4' | 'ipv6', owners: OwnerResolver): string {
  const find = <K extends Match['kind']>(kind: K) => rule.matches.find((m): m is Extract<Match, { kind: K }> => m.kind === kind);
  const out: string[] = [];
  const src = find('source');
  const dst = find('destination');
  const iif = find('inInterface');
  const oif = find('outInterface');
  const proto = find('protocol');
  if (src) out.push('-s', savedCidr(src.cidr));
  if (dst) out.push(...(dst.negate ? ['!'] : []), '-d', savedCidr(dst.cidr));
  if (iif) out.push('-i', iif.name);
  if (oif) out.push('-o', oif.name);
  if (proto) out.push('-p', proto.protocol);
  const not = (n: boolean): string[] => (n ? ['!'] : []);
  for (const m of rule.matches) {
    switch (m.kind) {
      case 'source':
      case 'destination':
      case 'inInterface':
      case 'outInterface':
      case 'protocol':
        break;
      case 'dport':
        out.push('-m', proto?.protocol ?? 'tcp', ...not(m.negate), '--dport', String(m.port));
        break;
      case 'dportRange':
        // The whole range is the match's "any port": iptables-save prints no --dport then.
        out.push('-m', proto?.protocol ?? 'tcp', ...(m.first === 0 && m.last === 65535 ? [] : ['--dport', `${m.first}:${m.last}`]));
        break;
      case 'sport':
        out.push('-m', proto?.protocol ?? 'tcp', '--sport', String(m.port));
        break;
      case 'multiportDports':
        out.push('-m', 'multiport', ...not(m.negate), '--dports', m.ports.join(','));
        break;
      case 'uidOwner':
        out.push('-m', 'owner', ...not(m.negate), '--uid-owner', ownerId(m.id, 'uid', owners));
        break;
      case 'gidOwner':
        out.push('-m', 'owner', ...not(m.negate), '--gid-owner', ownerId(m.id, 'gid', owners));
        break;
      case 'mark':
        out.push('-m', 'mark', ...not(m.negate), '--mark', hex(m.mark));
        break;
      case 'connmark':
        out.push('-m', 'connmark', '--mark', hex(m.mark));
        break;
      case 'ctstate':
        out.push('-m', 'conntrack', '--ctstate', m.states.join(','));
        break;
    }
  }
  out.push(...targetTokens(rule.target, family));
  return out.join(' ');
}

/** Our expected content per table: our own chains in full, and our rules in built-in chains. */
export interface ExpectedTable {
  /** Each of our chains with its rules (saved specs) in final kernel order. */
  readonly chains: ReadonlyMap<string, readonly string[]>;
  /** Our rules in built-in chains, in their final relative order. */
  readonly builtin: ReadonlyMap<string, readonly string[]>;
}

/**
 * Simulate appends and inserts to get the final order of our rules in each chain, as the kernel
 * will hold them (inserts at position N count only our own rules, which holds in a namespace
 * without foreign rules in those chains, the case Istio's inserts are written for).
 */
export function expectedState(family: FamilyRules, owners: OwnerResolver): ReadonlyMap<Table, ExpectedTable> {
  const perChain = new Map<string, string[]>();
  const key = (t: Table, c: string): string => `${t}\u0000${c}`;
  for (const r of family.rules) {
    const list = perChain.get(key(r.table, r.chain)) ?? [];
    const spec = savedSpec(r, family.family, owners);
    if (r.op.kind === 'append') list.push(spec);
    else list.splice(Math.min(r.op.position - 1, list.length), 0, spec);
    perChain.set(key(r.table, r.chain), list);
  }
  const out = new Map<Table, { chains: Map<string, string[]>; builtin: Map<string, string[]> }>();
  for (const [table, chains] of family.chains) {
    const entry = out.get(table) ?? { chains: new Map(), builtin: new Map() };
    for (const c of chains) entry.chains.set(c, perChain.get(key(table, c)) ?? []);
    out.set(table, entry);
  }
  for (const [k, rules] of perChain) {
    const [table, chain] = k.split('\u0000') as [Table, string];
    if (!BUILTIN_CHAINS.has(chain)) continue;
    const entry = out.get(table) ?? { chains: new Map(), builtin: new Map() };
    entry.builtin.set(chain, rules);
    out.set(table, entry);
  }
  return out;
}
