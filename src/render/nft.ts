import { cidrText, parseAddress } from '../config/net.js';
import { Chains, type Chain, type Cidr, type Family, type Match, type OwnerId, type Plan, type Protocol, type Rule, type Table, type Target } from '../model/rule.js';

/**
 * The nft script Istio's `--native-nftables` mode programs, rendered from the same Plan as the
 * iptables payloads (no second rule builder). Pure: a string in, a string out.
 *
 * Shape of the script (as Istio's `tools/istio-nftables` writes it): per table, in the order nat,
 * mangle, raw and only when the table has rules, `add table inet istio-proxy-<t>`, `flush table`,
 * the chains that hold rules (base chains first, then ours in Istio's fixed order), then the rules
 * in Istio's statement order. Both families share one `inet` table: a rule without an address
 * match is written once and covers IPv4 and IPv6; a rule with one (`ip daddr` / `ip6 daddr`, or
 * `tproxy ip` / `tproxy ip6`) is written per family.
 *
 * Where the script departs from a literal translation of the plan (each documented at its place):
 *  1. Statement order inside a rule follows Istio's nft spelling, not iptables' (`matchRank`).
 *  2. The two per-family rule lists are merged into one stream in Istio's statement order
 *     (`mergeFamilies`): shared rules once, per-family twins v4 then v6, per-family loops v4 loop
 *     then v6 loop.
 *  3. `-I CHAIN n` becomes `insert rule ... index n-1`, or `add rule` when the chain holds no more
 *     than n-1 rules at that point (nft refuses such an index; Istio appends instead).
 *  4. The conntrack-INVALID drop matches TCP only (`meta l4proto tcp ct state invalid`), as Istio's
 *     nft builder writes it; its iptables builder matches every protocol.
 *  5. An iptables interface wildcard `eth+` becomes nft's `"eth*"`.
 *
 * With `sets` (`--nft-sets`), one more (see `withSets`): rules of one chain that differ only in one
 * destination prefix or one destination port become one rule with an anonymous set, placed where
 * the first of them sat, so a chain walks one set lookup instead of a rule per value.
 */

type NftTable = 'nat' | 'mangle' | 'raw';

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

/**
 * Every token of a rule line is one of these: plain tokens of a small alphabet, a brace of an
 * anonymous set, or a quoted name of an even smaller one. Values are validated long before this
 * point; this is the last line of defence that no value can add a statement, a rule or a comment.
 */
const SAFE_TOKEN = /^(?:[A-Za-z0-9_.:/,!=-]+|[{}]|"[A-Za-z0-9_.@-]+\*?")$/;

/** Characters a name may have before it is even considered (interface and owner names). */
const SAFE_NAME = /^[A-Za-z0-9_.@+-]+$/;

/** A name nft reads as one unquoted string token (its scanner's `string`, without `/`). */
const UNQUOTED_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * Words nft's scanner reads as keywords (nftables 1.0.x token names): such a name must be quoted
 * or the script would not parse. Quoting changes the text only: nft lists the same ruleset.
 */
const NFT_KEYWORDS: ReadonlySet<string> = new Set(
  (
    'a-rwnd abort accept ackseq add addr ah all and arp asconf asconf-ack auto-merge avgpkt bridge burst bypass bytes ' +
    'cfi cgroup cgroupv2 chain chains checksum chunk classid code colon comma comment comp constant continue ' +
    'cookie-ack cookie-echo count counter counters cpi cpu create csumcov ct cum-tsn-ack cwr daddr data day dccp ' +
    'define dei delete describe destroy device devices direction dnat doff dport drop dscp dst dup dynamic echo ecn ' +
    'ecne element elements eol eq error esp ether event exists expectation expiration expires export exthdr fanout ' +
    'fastopen fib flags flow flowlabel flowtable flowtables flush forward-tsn frag frag-off fully-random fwd gateway ' +
    'gc-interval ge get goto group gt handle hbh hdrlength heartbeat heartbeat-ack helper helpers hlen hook hooks ' +
    'hoplimit hour htype ibriport ibrname icmp icmpv6 icmpx id igmp iif iifgroup iifname iiftype import in inc ' +
    'include index inet init init-ack init-tag initial-tsn insert interval ip ip6 ipsec jhash json jump junk l3proto ' +
    'label last last-entry le left length level limit limits list ll log lowest-tsn lshift lsrr lt map maps mark ' +
    'masquerade max-delay md5sig memory meta meter meters mh minute missing mod monitor more-fragments mptcp mrt mss ' +
    'mtu name ne netdev never new-cum-tsn newline nexthdr nexthop nftrace nh nop not notrack num num-dup-tsns ' +
    'num-gap-ack-blocks num-inbound-streams num-outbound-streams number numgen obriport obrname offload offset oif ' +
    'oifgroup oifname oiftype operation option options or original osf out over packets param-problem pcp ' +
    'performance persistent pkttype plen policy port position ppid prefix priority proto-dst proto-src protocol ptr ' +
    'ptype queue queue-threshold quota quotas ra random rate redefine redirect reject rename replace reply reqid ' +
    'reserved reserved2 reset return right rr rshift rt rt0 rt2 rtclassid rule rules ruleset sack sack-permitted ' +
    'sack0 sack1 sack2 sack3 saddr sctp secmark secmarks second seed seg-left semicolon seq seqno set sets shutdown ' +
    'shutdown-ack shutdown-complete sid size skgid skuid snaplen snat socket spi spnum sport srh ssn ssrr state ' +
    'status stream string subtype symhash synproxy synproxys table tables tag tcp th time timeout timestamp to ' +
    'tproxy trace transparent tsecr tsn tsval ttl tunnel tunnels type typeof udp udplite undefine until update ' +
    'urgptr used value version vlan vm vmap vtag week wildcard window with wscale xml xor xt zone'
  ).split(' '),
);

/**
 * Matches the nft script can hold beyond the plan's: a destination prefix set (`ip daddr { a, b }`),
 * made by `--nft-sets`. (A port set is the plan's own `multiportDports`.)
 */
type NftMatch = Match | { readonly kind: 'destinationSet'; readonly family: Family; readonly cidrs: readonly Cidr[] };

/** The fixed IPv6 addresses of Istio's per-family rule pairs (loopback and inbound passthrough source). */
const TWIN_V6_ADDRESSES: ReadonlySet<string> = new Set(['::1/128', '::6/128']);

function unsafe(what: string, value: string): never {
  throw new Error(`refusing to render unsafe ${what} ${JSON.stringify(value)} into the nft script`);
}

function nftTable(table: Table): NftTable {
  if (table === 'filter') throw new Error('the filter table has no counterpart in Istio\'s nft tables');
  return table;
}

/** Istio's nft chain names: lower case with dashes (`ISTIO_IN_REDIRECT` -> `istio-in-redirect`). */
export function nftChainName(chain: Chain): string {
  const name = chain.toLowerCase().replace(/_/g, '-');
  if (!/^[a-z][a-z-]*$/.test(name)) unsafe('chain', chain);
  return name;
}

/** An interface name; the iptables wildcard `eth+` is nft's `"eth*"`. */
function ifname(name: string): string {
  if (!SAFE_NAME.test(name)) unsafe('interface name', name);
  if (name.endsWith('+')) {
    const stem = name.slice(0, -1);
    if (stem === '' || stem.includes('+')) unsafe('interface name', name);
    return `"${stem}*"`;
  }
  if (name.includes('+')) unsafe('interface name', name);
  return UNQUOTED_NAME.test(name) && !NFT_KEYWORDS.has(name) ? name : `"${name}"`;
}

function owner(id: OwnerId): string {
  if (typeof id === 'number') return uint(id, 'uid/gid');
  if (!SAFE_NAME.test(id) || id.includes('+')) unsafe('owner name', id);
  return UNQUOTED_NAME.test(id) && !NFT_KEYWORDS.has(id) ? id : `"${id}"`;
}

function uint(n: number, what: string, max = 0xffffffff): string {
  if (!Number.isInteger(n) || n < 0 || n > max) unsafe(what, String(n));
  return String(n);
}

function port(n: number): string {
  return uint(n, 'port', 65535);
}

/** An address prefix: dotted quad or colon-hex by family (never a name nft would resolve). */
function cidr(c: Cidr): string {
  const text = cidrText(c);
  const address = c.family === 'ipv4' ? /^(?:[0-9]{1,3}\.){3}[0-9]{1,3}$/ : /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;
  const max = c.family === 'ipv4' ? 32 : 128;
  if (!address.test(c.address) || !Number.isInteger(c.prefixLength) || c.prefixLength < 0 || c.prefixLength > max) unsafe('address', text);
  return text;
}

const ipKeyword = (family: Family): string => (family === 'ipv4' ? 'ip' : 'ip6');

/**
 * Statement order inside a rule, as Istio's nft builder writes its rules (iptables' order differs:
 * `-o lo ! -d X -p tcp` is `oifname lo meta l4proto tcp ip daddr != X`): interface, protocol,
 * address, conntrack state, ports, mark, conntrack mark, owner. In raw, ports come before the
 * address (`udp dport 53 ip daddr S`). The order of statements is part of the rule in the kernel.
 */
function matchRank(table: NftTable, x: NftMatch): number {
  switch (x.kind) {
    case 'inInterface':
    case 'outInterface':
      return 0;
    case 'protocol':
      return 1;
    case 'source':
    case 'destination':
    case 'destinationSet':
      return table === 'raw' ? 4 : 2;
    case 'ctstate':
      return 3;
    case 'dport':
    case 'dportRange':
    case 'sport':
    case 'multiportDports':
      return table === 'raw' ? 2 : 4;
    case 'mark':
      return 5;
    case 'connmark':
      return 6;
    case 'uidOwner':
    case 'gidOwner':
      return 7;
  }
}

const isPort = (x: NftMatch): boolean => x.kind === 'dport' || x.kind === 'dportRange' || x.kind === 'sport' || x.kind === 'multiportDports';
const isAddress = (x: NftMatch): boolean => x.kind === 'source' || x.kind === 'destination' || x.kind === 'destinationSet';
const isInterface = (x: NftMatch): boolean => x.kind === 'inInterface' || x.kind === 'outInterface';

/**
 * Whether Istio spells the protocol as its own `meta l4proto` statement. A port match implies it
 * (nft adds the same dependency, so the kernel rule is identical either way); Istio leaves it
 * implicit on the outbound port rules of ISTIO_OUTPUT, on the per-server and UDP rules of
 * ISTIO_OUTPUT_DNS, and everywhere in raw.
 */
function explicitProtocol(table: NftTable, chain: Chain, matches: readonly NftMatch[], protocol: Protocol): boolean {
  if (!matches.some(isPort)) return true;
  if (table === 'raw') return false;
  if (chain === Chains.OUTPUT) return matches.some(isInterface);
  if (chain === Chains.OUTPUT_DNS) return !(matches.some(isAddress) || protocol === 'udp');
  return true;
}

function matchStatements(table: NftTable, chain: Chain, given: readonly NftMatch[]): string[] {
  let matches = given;
  // Departure 4: Istio's nft builder drops conntrack-INVALID TCP only.
  if (matches.some((x) => x.kind === 'ctstate' && x.states.includes('INVALID')) && !matches.some((x) => x.kind === 'protocol')) {
    matches = [{ kind: 'protocol', protocol: 'tcp' }, ...matches];
  }
  const protocols = matches.flatMap((x) => (x.kind === 'protocol' ? [x.protocol] : []));
  if (protocols.length > 1) throw new Error('a rule with two protocol matches has no nft form');
  const protocol = protocols[0];
  const proto = (): Protocol => {
    if (protocol === undefined) throw new Error('a port match without a protocol has no nft form');
    return protocol;
  };
  const ne = (negate: boolean): string => (negate ? '!= ' : '');
  const sorted = matches
    .map((x, i) => ({ x, i }))
    .sort((p, q) => matchRank(table, p.x) - matchRank(table, q.x) || p.i - q.i)
    .map((p) => p.x);
  const out: string[] = [];
  for (const x of sorted) {
    switch (x.kind) {
      case 'protocol':
        if (explicitProtocol(table, chain, matches, x.protocol)) out.push(`meta l4proto ${x.protocol}`);
        break;
      case 'source':
        out.push(`${ipKeyword(x.cidr.family)} saddr ${cidr(x.cidr)}`);
        break;
      case 'destination':
        out.push(`${ipKeyword(x.cidr.family)} daddr ${ne(x.negate)}${cidr(x.cidr)}`);
        break;
      case 'destinationSet':
        if (x.cidrs.length === 0 || x.cidrs.some((c) => c.family !== x.family)) throw new Error('an empty or mixed-family address set has no nft form');
        out.push(`${ipKeyword(x.family)} daddr { ${x.cidrs.map(cidr).join(', ')} }`);
        break;
      case 'inInterface':
        out.push(`iifname ${ifname(x.name)}`);
        break;
      case 'outInterface':
        out.push(`oifname ${ifname(x.name)}`);
        break;
      case 'dport':
        out.push(`${proto()} dport ${ne(x.negate)}${port(x.port)}`);
        break;
      case 'dportRange':
        // nft writes a range with "-" (Istio's script passes iptables' "a:b" through, which nft rejects).
        out.push(`${proto()} dport ${port(x.first)}-${port(x.last)}`);
        break;
      case 'sport':
        out.push(`${proto()} sport ${port(x.port)}`);
        break;
      case 'multiportDports':
        if (x.ports.length === 0) throw new Error('an empty port list has no nft form');
        out.push(`${proto()} dport ${ne(x.negate)}{ ${x.ports.map(port).join(', ')} }`);
        break;
      case 'uidOwner':
        out.push(`${table === 'raw' ? 'meta ' : ''}skuid ${ne(x.negate)}${owner(x.id)}`);
        break;
      case 'gidOwner':
        out.push(`${table === 'raw' ? 'meta ' : ''}skgid ${ne(x.negate)}${owner(x.id)}`);
        break;
      case 'mark':
        out.push(`mark ${ne(x.negate)}${uint(x.mark, 'mark')}`);
        break;
      case 'connmark':
        out.push(`ct mark ${uint(x.mark, 'mark')}`);
        break;
      case 'ctstate':
        if (x.states.length === 0) throw new Error('an empty conntrack state list has no nft form');
        out.push(`ct state ${x.states.map((s) => s.toLowerCase()).join(',')}`);
        break;
    }
  }
  return out;
}

/** The statement(s) of a target, with Istio's `counter` in front of the action. */
function targetStatements(target: Target, family: Family): string[] {
  switch (target.kind) {
    case 'jump':
      return ['counter', `jump ${nftChainName(target.chain)}`];
    case 'return':
      return ['counter', 'return'];
    case 'accept':
      return ['counter', 'accept'];
    case 'drop':
      return ['counter', 'drop'];
    case 'redirect':
      return ['counter', `redirect to :${port(target.toPort)}`];
    case 'tproxy':
      // iptables' TPROXY sets the mark and accepts; in nft these are three statements.
      if (target.mask !== 0xffffffff) throw new Error('a TPROXY mark with a partial mask has no nft form here');
      return [`tproxy ${ipKeyword(family)} to :${port(target.onPort)}`, `meta mark set ${uint(target.mark, 'mark')}`, 'counter', 'accept'];
    case 'setMark':
      return ['counter', `meta mark set ${uint(target.mark, 'mark')}`];
    case 'connmarkSave':
      return ['counter', 'ct mark set mark'];
    case 'connmarkRestore':
      return ['counter', 'meta mark set ct mark'];
    case 'ct':
      return ['counter', `ct zone set ${uint(target.zone, 'conntrack zone', 65535)}`];
  }
}

/** One plan rule as nft sees it: where it goes and its statements, for one family. */
interface Item {
  readonly rule: Rule;
  readonly family: Family;
  /** The statements after the chain (and index): matches, counter, action. */
  readonly body: string;
  /** Whether the rule is tied to its family (an address match, or TPROXY). */
  readonly specific: boolean;
  /** The rule with its addresses left out: per-family variants of one rule share it. */
  readonly shape: string;
}

function toItem(rule: Rule, family: Family): Item {
  const table = nftTable(rule.table);
  const specific = rule.matches.some(isAddress) || rule.target.kind === 'tproxy';
  const body = [...matchStatements(table, rule.chain, rule.matches), ...targetStatements(rule.target, family)].join(' ');
  const shape = `${opText(rule)} ${rule.chain} ${body
    .replace(/\bip6? ([sd]addr) (!= )?[0-9A-Fa-f.:]+\/[0-9]+/g, 'ipX $1 $2ADDR')
    .replace(/\btproxy ip6? to/g, 'tproxy ipX to')}`;
  return { rule, family, body, specific, shape };
}

const opText = (rule: Rule): string => (rule.op.kind === 'append' ? 'A' : `I${rule.op.position}`);

/** Shared rules (no family in them) are the same rule when chain, operation and statements match. */
const sameShared = (a: Item, b: Item): boolean => !a.specific && !b.specific && a.shape === b.shape;

function addressOf(item: Item): string | undefined {
  for (const x of item.rule.matches) if (x.kind === 'source' || x.kind === 'destination') return cidrText(x.cidr);
  return undefined;
}

/**
 * Departure 2: one stream from the two family lists, in Istio's statement order. The plan keeps
 * each family's rules in Istio's iptables order; Istio's nft builder issues the same statements
 * once, so:
 *  - a rule both lists share (no address in it) is issued once, where both have it (an alignment
 *    of the two lists on shared rules, longest common subsequence);
 *  - a shared rule only one list has (the jumps to the DNS chains when only one family has DNS
 *    servers) is issued once too: Istio's nft builder issues it when any family needs it;
 *  - a per-family pair of one statement (loopback and passthrough rules, `::1/128`/`::6/128` on the
 *    IPv6 side) is issued v4 then v6, side by side;
 *  - per-family loops (DNS servers, excluded and included CIDRs) are issued as the whole IPv4 loop,
 *    then the whole IPv6 loop, loops in Istio's statement order.
 * Only the relative order of rules within a chain is part of the ruleset; the rest keeps the
 * script in Istio's order.
 */
function mergeFamilies(a: readonly Item[], b: readonly Item[]): Item[] {
  if (b.length === 0) return [...a];
  if (a.length === 0) return [...b];
  // Longest common subsequence over shared rules.
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    const row = lcs[i] as number[];
    const next = lcs[i + 1] as number[];
    for (let j = m - 1; j >= 0; j--) {
      row[j] = sameShared(a[i] as Item, b[j] as Item) ? (next[j + 1] as number) + 1 : Math.max(next[j] as number, row[j + 1] as number);
    }
  }
  const anchors: [number, number][] = [];
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (sameShared(a[i] as Item, b[j] as Item) && (lcs[i] as number[])[j] === ((lcs[i + 1] as number[])[j + 1] as number) + 1) {
      anchors.push([i, j]);
      i++;
      j++;
    } else if (((lcs[i + 1] as number[])[j] as number) >= ((lcs[i] as number[])[j + 1] as number)) i++;
    else j++;
  }
  const out: Item[] = [];
  let pi = 0;
  let pj = 0;
  for (const [ai, bj] of [...anchors, [n, m] as [number, number]]) {
    out.push(...mergeSegment(a.slice(pi, ai), b.slice(pj, bj)));
    if (ai < n) out.push(a[ai] as Item);
    pi = ai + 1;
    pj = bj + 1;
  }
  return out;
}

/** Between two shared rules: pairs side by side, loops around them. */
function mergeSegment(a: readonly Item[], b: readonly Item[]): Item[] {
  const twins: [number, number][] = [];
  const seen = new Set<string>();
  let from = 0;
  b.forEach((y, j) => {
    const first = !seen.has(y.shape);
    seen.add(y.shape);
    const address = addressOf(y);
    if (!first || address === undefined || !TWIN_V6_ADDRESSES.has(address)) return;
    for (let i = from; i < a.length; i++) {
      if ((a[i] as Item).shape === y.shape) {
        twins.push([i, j]);
        from = i + 1;
        return;
      }
    }
  });
  const out: Item[] = [];
  let pi = 0;
  let pj = 0;
  for (const [ai, bj] of [...twins, [a.length, b.length] as [number, number]]) {
    out.push(...mergeLoops(a.slice(pi, ai), b.slice(pj, bj)));
    if (ai < a.length) out.push(a[ai] as Item, b[bj] as Item);
    pi = ai + 1;
    pj = bj + 1;
  }
  return out;
}

/**
 * Which Istio loop a per-family rule comes from: its protocol and action. The kube-virt inserts
 * into PREROUTING and the appends to ISTIO_OUTPUT for one included CIDR share a loop, as do the two
 * raw zone rules of one DNS server; TCP and UDP DNS redirects are separate loops.
 */
function loopKey(item: Item): string {
  const proto = item.rule.matches.find((x) => x.kind === 'protocol');
  const t = item.rule.target;
  return `${proto?.kind === 'protocol' ? proto.protocol : '-'} ${t.kind === 'jump' ? `jump:${t.chain}` : t.kind}`;
}

/** Istio's statement order of the per-family loops, used only when the two lists cannot tell. */
const LOOP_RANK: Readonly<Record<string, number>> = {
  [`- jump:${Chains.OUTPUT_DNS}`]: 0,
  'tcp redirect': 1,
  'udp redirect': 2,
  [`- jump:${Chains.INBOUND}`]: 3,
  'udp ct': 4,
  '- return': 5,
  [`- jump:${Chains.REDIRECT}`]: 6,
};
const loopRank = (key: string): number => LOOP_RANK[key] ?? 7;

function mergeLoops(a: readonly Item[], b: readonly Item[]): Item[] {
  const runs = (items: readonly Item[]): { key: string; items: Item[] }[] => {
    const out: { key: string; items: Item[] }[] = [];
    for (const item of items) {
      const key = loopKey(item);
      const last = out[out.length - 1];
      if (last !== undefined && last.key === key) last.items.push(item);
      else out.push({ key, items: [item] });
    }
    return out;
  };
  const ra = runs(a);
  const rb = runs(b);
  const out: Item[] = [];
  let i = 0;
  let j = 0;
  while (i < ra.length || j < rb.length) {
    const x = ra[i];
    const y = rb[j];
    if (x === undefined) {
      out.push(...(y as { items: Item[] }).items);
      j++;
    } else if (y === undefined) {
      out.push(...x.items);
      i++;
    } else if (x.key === y.key) {
      out.push(...x.items, ...y.items);
      i++;
      j++;
    } else {
      const xLaterInB = rb.slice(j + 1).some((r) => r.key === x.key);
      const yLaterInA = ra.slice(i + 1).some((r) => r.key === y.key);
      const bFirst = xLaterInB && !yLaterInA ? true : yLaterInA && !xLaterInB ? false : loopRank(y.key) < loopRank(x.key);
      if (bFirst) {
        out.push(...y.items);
        j++;
      } else {
        out.push(...x.items);
        i++;
      }
    }
  }
  return out;
}

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
 *     recomputed against the merged chain, so every chain ends up in the order of step 2.
 */

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

/** Actions that settle a packet whichever way it goes on: verdicts, a NAT redirect, TPROXY (final). */
const SETTLING: ReadonlySet<Target['kind']> = new Set(['return', 'accept', 'drop', 'redirect', 'tproxy']);

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
      const ok = targets.every((t) => SETTLING.has(t.kind) || (t.kind === 'jump' && (pure.has(t.chain) || !rulesOf.has(t.chain))));
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
  return SETTLING.has(target.kind) || (target.kind === 'jump' && pure.has(target.chain));
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
  const verdict = targetStatements(rule.target, item.family).join(' ');
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
  return [...matchStatements(table, rule.chain, matches), ...targetStatements(rule.target, first.item.family)].join(' ');
}

/** Where an insert puts its rule (0-based), refusing a position below 1; undefined for an append. */
function insertIndex(rule: Rule): number | undefined {
  if (rule.op.kind !== 'insert') return undefined;
  if (!Number.isInteger(rule.op.position) || rule.op.position < 1) unsafe('position', String(rule.op.position));
  return rule.op.position - 1;
}

/** The set-rendered rule lines of one table, in script order (see the comment above). */
function withSets(table: NftTable, items: readonly Item[]): { chain: Chain; index: number | undefined; body: string }[] {
  // The final order of each chain, as nft builds it from the script (inserts past the end append).
  const chains = new Map<Chain, Item[]>();
  for (const item of items) {
    const list = chains.get(item.rule.chain) ?? [];
    chains.set(item.rule.chain, list);
    const index = insertIndex(item.rule);
    if (index !== undefined && index < list.length) list.splice(index, 0, item);
    else list.push(item);
  }
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
  const out: { chain: Chain; index: number | undefined; body: string }[] = [];
  for (const item of items) {
    const { unit, rank } = unitOf.get(item) as { unit: SetUnit; rank: number };
    if (done.has(unit)) continue;
    done.add(unit);
    const ranks = written.get(item.rule.chain) ?? [];
    written.set(item.rule.chain, ranks);
    const before = ranks.filter((r) => r < rank).length;
    out.push({ chain: item.rule.chain, index: before < ranks.length ? before : undefined, body: unitBody(table, unit) });
    ranks.push(rank);
  }
  return out;
}

function checkLine(line: string): string {
  for (const token of line.split(' ')) if (!SAFE_TOKEN.test(token)) unsafe('token', token);
  return line;
}

/** The script for one table, or nothing when the plan has no rule in it. */
function renderTable(table: NftTable, v4: readonly Rule[], v6: readonly Rule[], sets: boolean): string[] {
  const items = mergeFamilies(
    v4.filter((r) => r.table === table).map((r) => toItem(r, 'ipv4')),
    v6.filter((r) => r.table === table).map((r) => toItem(r, 'ipv6')),
  );
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
  if (sets) {
    for (const { chain, index, body } of withSets(table, items)) {
      const at = index === undefined ? 'add rule' : 'insert rule';
      lines.push(checkLine(`${at} inet ${name} ${nftChainName(chain)}${index === undefined ? '' : ` index ${index}`} ${body}`));
    }
    return lines;
  }
  // Departure 3: inserts at or past the end of the chain are appends.
  const count = new Map<Chain, number>();
  for (const { rule, body } of items) {
    const held = count.get(rule.chain) ?? 0;
    const index = insertIndex(rule);
    const chain = nftChainName(rule.chain);
    lines.push(
      checkLine(
        index !== undefined && index < held
          ? `insert rule inet ${name} ${chain} index ${index} ${body}`
          : `add rule inet ${name} ${chain} ${body}`,
      ),
    );
    count.set(rule.chain, held + 1);
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
}

/**
 * The nft script for `nft -f -` that Istio's `--native-nftables` mode programs for this plan:
 * `inet` tables istio-proxy-nat, istio-proxy-mangle and istio-proxy-raw (each flushed, then
 * filled), both families in one table. Empty when the plan has no rules. Throws rather than render
 * a value outside the safe alphabet or a rule with no nft counterpart.
 */
export function renderNft(plan: Plan, options: NftRenderOptions = {}): string {
  const v4 = plan.ipv4.rules;
  const v6 = plan.ipv6?.rules ?? [];
  for (const rule of [...v4, ...v6]) nftTable(rule.table);
  const lines = TABLE_ORDER.flatMap((table) => renderTable(table, v4, v6, options.sets === true));
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
