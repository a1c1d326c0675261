import { Chains, type Chain, type Plan, type Rule } from '../../model/rule.js';
import { replayChains } from '../../model/replay.js';
import { withSets, type Item } from './sets.js';
import { checkLine, nftChainName, nftTable, ruleBody, unsafe, type NftTable } from './statements.js';

export { nftChainName } from './statements.js';

/**
 * The nft script Istio's `--native-nftables` mode programs, rendered from the same Plan as the
 * iptables payloads (no second rule builder). Pure: a string in, a string out.
 *
 * Shape of the script (as Istio's `tools/istio-nftables` writes it): per table, in the order nat,
 * mangle, raw and only when the table has rules, `add table inet istio-proxy-<t>`, `flush table`,
 * the chains that hold rules (base chains first, then ours in Istio's fixed order), then the rules
 * in Istio's statement order. Both families share one `inet` table: the plan holds each rule once
 * with its family, in the order Istio issues them (a shared rule once, a per-family pair side by
 * side, per-family loops IPv4's then IPv6's), and the script writes them in that order. A rule
 * without an address match covers IPv4 and IPv6; one with an address (`ip daddr` / `ip6 daddr`),
 * or TPROXY (`tproxy ip` / `tproxy ip6`), covers its family.
 *
 * Where the script departs from a literal translation of the plan:
 *  1. The statements of a rule are Istio's nft spelling, not iptables' (./statements.ts).
 *  2. `-I CHAIN n` becomes `insert rule ... index n-1`, or `add rule` when the chain holds no more
 *     than n-1 rules at that point (nft refuses such an index; Istio appends instead).
 *
 * With `sets` (`--nft-sets`), one more (./sets.ts): rules of one chain that differ only in one
 * destination prefix or one destination port become one rule with an anonymous set, placed where
 * the first of them sat, so a chain walks one set lookup instead of a rule per value.
 */

/** Istio's table names. */
export const NFT_TABLES: Readonly<Record<NftTable, string>> = {
  nat: 'istio-proxy-nat',
  mangle: 'istio-proxy-mangle',
  raw: 'istio-proxy-raw',
};

const TABLE_ORDER: readonly NftTable[] = ['nat', 'mangle', 'raw'];

/** Base chains per table: type, hook and priority as Istio declares them. */
const BASE_CHAINS: Readonly<Record<NftTable, Readonly<Partial<Record<Chain, string>>>>> = {
  nat: {
    PREROUTING: 'type nat hook prerouting priority -100',
    OUTPUT: 'type nat hook output priority -100',
  },
  mangle: {
    PREROUTING: 'type filter hook prerouting priority -150',
    OUTPUT: 'type route hook output priority -150',
  },
  raw: {
    PREROUTING: 'type filter hook prerouting priority -300',
    OUTPUT: 'type filter hook output priority -300',
  },
};

/** The order in which Istio declares chains in each table (only those used are declared). */
const CHAIN_ORDER: Readonly<Record<NftTable, readonly Chain[]>> = {
  nat: ['PREROUTING', 'OUTPUT', Chains.INBOUND, Chains.REDIRECT, Chains.IN_REDIRECT, Chains.OUTPUT, Chains.OUTPUT_DNS],
  mangle: ['PREROUTING', 'OUTPUT', Chains.DIVERT, Chains.TPROXY, Chains.INBOUND, Chains.DROP],
  raw: ['PREROUTING', 'OUTPUT', Chains.INBOUND, Chains.OUTPUT_DNS],
};

/** An insert below position 1 is refused; one past the chain's end is an append (departure 2). */
function outOfRange({ rule }: Item): void {
  if (rule.op.kind === 'insert' && !(Number.isInteger(rule.op.position) && rule.op.position >= 1)) unsafe('position', String(rule.op.position));
}

/** The script for one table, or nothing when the plan has no rule in it. */
function renderTable(table: NftTable, rules: readonly Rule[], sets: boolean, comment: ((rules: readonly Rule[]) => string) | undefined): string[] {
  const items: Item[] = [];
  for (const rule of rules) if (rule.table === table) items.push({ rule, body: ruleBody(table, rule) });
  if (items.length === 0) return [];
  const name = NFT_TABLES[table];
  const used = new Set<Chain>();
  for (const { rule } of items) {
    used.add(rule.chain);
    if (rule.target.kind === 'jump') used.add(rule.target.chain);
  }
  const order = CHAIN_ORDER[table];
  for (const chain of used) {
    if (!order.includes(chain)) throw new Error(`chain ${chain} has no counterpart in Istio's ${name}`);
  }
  const lines = [`add table inet ${name}`, `flush table inet ${name}`];
  for (const chain of order) {
    if (!used.has(chain)) continue;
    const base = BASE_CHAINS[table][chain];
    lines.push(`add chain inet ${name} ${nftChainName(chain)}${base === undefined ? '' : ` { ${base} ; }`}`);
  }
  const line = (chain: Chain, index: number | undefined, body: string): string =>
    checkLine(`${index === undefined ? 'add rule' : 'insert rule'} inet ${name} ${nftChainName(chain)}${index === undefined ? '' : ` index ${index}`} ${body}`);
  if (sets) {
    for (const { chain, index, body, rules: merged } of withSets(table, items, outOfRange)) {
      if (comment !== undefined) lines.push(comment(merged));
      lines.push(line(chain, index, body));
    }
  } else {
    replayChains(items, (item) => item.rule, {
      outOfRange,
      placed: (item, index) => {
        if (comment !== undefined) lines.push(comment([item.rule]));
        lines.push(line(item.rule.chain, index, item.body));
      },
    });
  }
  return lines;
}

/** Options of `renderNft`. */
export interface NftRenderOptions {
  /**
   * `--nft-sets`: rules of one chain that differ only in one destination prefix or port become one
   * rule with an anonymous set (same traffic, fewer rules). Off: Istio's script, rule per value.
   */
  readonly sets?: boolean;
  /**
   * `--explain`: the line this returns (a `#` comment) above each rule line, given the plan rules
   * the line writes (several when they share a set).
   */
  readonly comment?: (rules: readonly Rule[]) => string;
}

/**
 * The nft script for `nft -f -` that Istio's `--native-nftables` mode programs for this plan:
 * `inet` tables istio-proxy-nat, istio-proxy-mangle and istio-proxy-raw (each flushed, then
 * filled), both families in one table. Empty when the plan has no rules. Throws rather than render
 * a value outside the safe alphabet or a rule with no nft counterpart.
 */
export function renderNft(plan: Plan, options: NftRenderOptions = {}): string {
  for (const rule of plan.rules) nftTable(rule.table);
  const lines = TABLE_ORDER.flatMap((table) => renderTable(table, plan.rules, options.sets === true, options.comment));
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
