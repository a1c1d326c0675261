/**
 * The typed rule model. A rule is data: a table, a chain, an operation (append or insert at a
 * position), its matches in the order they are written, and one target. Values inside are already
 * validated (numbers, parsed prefixes, checked interface and owner names), so rendering them can
 * never produce more than one rule.
 */
import type { CaptureConfig } from '../config/config.js';

import type { OptionKey } from '../config/options.js';

/** An address family: IPv4 rules go to iptables, IPv6 rules to ip6tables. */
export type Family = 'ipv4' | 'ipv6';
/**
 * The families a rule is programmed for: `both` is one rule, the same in each enabled family (nft
 * writes it once in its `inet` table); `ipv4`/`ipv6` a rule of that family only (an address in
 * it, a per-family value, or a jump only one family needs).
 */
export type RuleFamily = Family | 'both';
/** An iptables table. */
export type Table = 'filter' | 'mangle' | 'nat' | 'raw';
/** A transport protocol a rule matches (`-p`). */
export type Protocol = 'tcp' | 'udp';

/** Built-in chains: never created with `-N`, never deleted. */
export const BUILTIN_CHAINS: ReadonlySet<string> = new Set([
  'INPUT',
  'OUTPUT',
  'FORWARD',
  'PREROUTING',
  'POSTROUTING',
]);

/** Our own chains, in Istio's spelling. */
export const Chains = {
  INBOUND: 'ISTIO_INBOUND',
  REDIRECT: 'ISTIO_REDIRECT',
  IN_REDIRECT: 'ISTIO_IN_REDIRECT',
  OUTPUT: 'ISTIO_OUTPUT',
  OUTPUT_DNS: 'ISTIO_OUTPUT_DNS',
  DIVERT: 'ISTIO_DIVERT',
  TPROXY: 'ISTIO_TPROXY',
  DROP: 'ISTIO_DROP',
} as const;

/** One of our chains (ISTIO_*), created with `-N`. */
export type OwnChain = (typeof Chains)[keyof typeof Chains];
/** A chain the kernel provides. */
export type BuiltinChain = 'INPUT' | 'OUTPUT' | 'FORWARD' | 'PREROUTING' | 'POSTROUTING';
/** Any chain a rule can be in. */
export type Chain = OwnChain | BuiltinChain;

/** An address prefix, already parsed and checked for its family. */
export interface Cidr {
  readonly family: Family;
  /** The address as written in rules (canonical text form). */
  readonly address: string;
  readonly prefixLength: number;
}

/** A destination port, or an inclusive range of them (`first` < `last`), as `--dport` takes them. */
export type PortOrRange = number | { readonly first: number; readonly last: number };

/** A uid or gid as iptables' owner match takes it: a number, or a name checked against POSIX rules. */
export type OwnerId = number | string;

/** One match of a rule, as data (rendered as its iptables options, in order). */
export type Match =
  | { readonly kind: 'protocol'; readonly protocol: Protocol }
  | { readonly kind: 'source'; readonly cidr: Cidr }
  | { readonly kind: 'destination'; readonly cidr: Cidr; readonly negate: boolean }
  | { readonly kind: 'inInterface'; readonly name: string }
  | { readonly kind: 'outInterface'; readonly name: string }
  | { readonly kind: 'dport'; readonly port: number; readonly negate: boolean }
  /** `--dport first:last` (first < last); nft `dport first-last`. */
  | { readonly kind: 'dportRange'; readonly first: number; readonly last: number }
  | { readonly kind: 'sport'; readonly port: number }
  | { readonly kind: 'multiportDports'; readonly ports: readonly number[]; readonly negate: boolean }
  | { readonly kind: 'uidOwner'; readonly id: OwnerId; readonly negate: boolean }
  | { readonly kind: 'gidOwner'; readonly id: OwnerId; readonly negate: boolean }
  | { readonly kind: 'mark'; readonly mark: number; readonly negate: boolean }
  | { readonly kind: 'connmark'; readonly mark: number }
  | { readonly kind: 'ctstate'; readonly states: readonly ('INVALID' | 'RELATED' | 'ESTABLISHED')[] };

/** What a rule does when it matches (`-j ...`). */
export type Target =
  | { readonly kind: 'jump'; readonly chain: OwnChain }
  | { readonly kind: 'return' }
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }
  /**
   * REDIRECT. Istio spells the option `--to-ports` everywhere except for UDP DNS, where it writes
   * `--to-port`; both are accepted by iptables and we keep each spelling.
   */
  | { readonly kind: 'redirect'; readonly toPort: number; readonly spelling: '--to-ports' | '--to-port' }
  | { readonly kind: 'tproxy'; readonly mark: number; readonly mask: number; readonly onPort: number }
  | { readonly kind: 'setMark'; readonly mark: number }
  | { readonly kind: 'connmarkSave' }
  | { readonly kind: 'connmarkRestore' }
  | { readonly kind: 'ct'; readonly zone: number };

/** How a rule is added: `-A` (append) or `-I CHAIN N` (insert at a 1-based position). */
export type Operation = { readonly kind: 'append' } | { readonly kind: 'insert'; readonly position: number };

/**
 * One option value behind a rule or routing step: the option's key in the option table (OPTIONS:
 * its flag, short and long, and its environment variables are there) and the value as the flag
 * takes it, one element of a list (`15090`, `10.96.0.0/12`, `*`, `TPROXY`).
 */
export interface OptionUse {
  readonly key: OptionKey;
  readonly value: string;
}

/**
 * Why a rule or routing step exists: the option values that made it, and what it is for in a few
 * words ("inbound port excluded from capture"). No options: a rule every plan has (the mode and
 * defaults of the other options aside), such as "localhost is never captured".
 */
export interface Provenance {
  readonly purpose: string;
  readonly options: readonly OptionUse[];
}

/** One rule: a table, a chain, how it is added, its matches in order, its target, and why it exists. */
export interface Rule {
  readonly family: RuleFamily;
  readonly table: Table;
  readonly chain: Chain;
  readonly op: Operation;
  readonly matches: readonly Match[];
  readonly target: Target;
  readonly why: Provenance;
}

/** The rules for one address family, in the order they are issued (the plan's view of one family). */
export interface FamilyRules {
  readonly family: Family;
  readonly rules: readonly Rule[];
  /** Our chains per table, in the order they are first used (creation order for `-N`). */
  readonly chains: ReadonlyMap<Table, readonly OwnChain[]>;
}

/**
 * A routing step, applied after the rules (with `ip` by the Node CLI, over rtnetlink by the
 * entrypoint), with why it exists.
 */
export type RouteStep = (
  /** `ip -6 addr add ::6/128 dev lo`: the source address the proxy binds for inbound passthrough. */
  | { readonly kind: 'loopbackAddress'; readonly family: 'ipv6'; readonly cidr: Cidr }
  /** `ip rule add fwmark <mark> lookup <table>`: packets marked by TPROXY use the local table. */
  | { readonly kind: 'fwmarkRule'; readonly family: Family; readonly mark: number; readonly table: number }
  /** `ip route add local default dev lo table <table>`: deliver them locally. */
  | { readonly kind: 'localRoute'; readonly family: Family; readonly table: number }
) & { readonly why: Provenance };

/** Everything istio-iptables would program, as data. Dry run, apply and cleanup all derive from it. */
export interface Plan {
  /**
   * Every rule, each once with its family, in the order Istio issues them: per family, the rules
   * of that family and the shared ones, in iptables' order; a rule and its other-family twin
   * (the same rule with the family's own value) side by side.
   */
  readonly rules: readonly Rule[];
  /** IPv4's view of `rules` (the `both` and `ipv4` rules): what iptables-restore is given. */
  readonly ipv4: FamilyRules;
  /** IPv6's view of `rules`; null when IPv6 is not enabled. */
  readonly ipv6: FamilyRules | null;
  readonly routes: readonly RouteStep[];
  /** Notes about decisions the builder made (e.g. DNS capture disabled for lack of servers). */
  readonly notes: readonly string[];
  /**
   * The configuration the plan was built from: what a run with these settings owns under either
   * mode (our rules in built-in chains, the routing) is built from it when a namespace is
   * reconciled, cleaned or compared (build/owned.ts).
   */
  readonly capture: CaptureConfig;
}

/**
 * The default of a switch over a union's kinds (Match, Target, ...): with every kind handled the
 * argument is `never`, so a kind added to the model fails to compile until each switch handles it.
 */
export function unhandled(x: never): never {
  throw new Error(`unhandled kind ${JSON.stringify((x as { kind?: unknown }).kind)}`);
}
