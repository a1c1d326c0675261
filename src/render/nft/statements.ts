import { cidrText } from '../../config/net.js';
import { Chains, unhandled, type Chain, type Cidr, type Family, type Match, type OwnerId, type Protocol, type Rule, type RuleFamily, type Table, type Target } from '../../model/rule.js';

/**
 * One plan rule as nft statements (matches, `counter`, action), in Istio's nft spelling. Where a
 * rule's statements depart from a literal translation of its iptables form:
 *  - Statement order follows Istio's nft builder, not iptables' (`matchRank`).
 *  - The conntrack-INVALID drop matches TCP only (`meta l4proto tcp ct state invalid`), as Istio's
 *    nft builder writes it; its iptables builder matches every protocol.
 *  - An iptables interface wildcard `eth+` becomes nft's `"eth*"`.
 * Every value is checked against a small safe alphabet on the way out (`unsafe`).
 */

export type NftTable = 'nat' | 'mangle' | 'raw';

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
export type NftMatch = Match | { readonly kind: 'destinationSet'; readonly family: Family; readonly cidrs: readonly Cidr[] };

export function unsafe(what: string, value: string): never {
  throw new Error(`refusing to render unsafe ${what} ${JSON.stringify(value)} into the nft script`);
}

export function nftTable(table: Table): NftTable {
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
  const [rank, rawRank] = MATCH_RANK[x.kind];
  return table === 'raw' ? rawRank : rank;
}

/** Each match kind's rank: [in nat and mangle, in raw]. */
const MATCH_RANK: Readonly<Record<NftMatch['kind'], readonly [number, number]>> = {
  inInterface: [0, 0],
  outInterface: [0, 0],
  protocol: [1, 1],
  source: [2, 4],
  destination: [2, 4],
  destinationSet: [2, 4],
  ctstate: [3, 3],
  dport: [4, 2],
  dportRange: [4, 2],
  sport: [4, 2],
  multiportDports: [4, 2],
  mark: [5, 5],
  connmark: [6, 6],
  uidOwner: [7, 7],
  gidOwner: [7, 7],
};

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

export function matchStatements(table: NftTable, chain: Chain, given: readonly NftMatch[]): string[] {
  let matches = given;
  // Istio's nft builder drops conntrack-INVALID TCP only.
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
      default:
        unhandled(x);
    }
  }
  return out;
}

/** The statement(s) of a target, with Istio's `counter` in front of the action. */
export function targetStatements(target: Target, family: RuleFamily): string[] {
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
      if (family === 'both') throw new Error('a TPROXY rule shared by both families has no nft form (`tproxy ip` or `tproxy ip6`)');
      return [`tproxy ${ipKeyword(family)} to :${port(target.onPort)}`, `meta mark set ${uint(target.mark, 'mark')}`, 'counter', 'accept'];
    case 'setMark':
      return ['counter', `meta mark set ${uint(target.mark, 'mark')}`];
    case 'connmarkSave':
      return ['counter', 'ct mark set mark'];
    case 'connmarkRestore':
      return ['counter', 'meta mark set ct mark'];
    case 'ct':
      return ['counter', `ct zone set ${uint(target.zone, 'conntrack zone', 65535)}`];
    default:
      return unhandled(target);
  }
}

/** A rule's statements after its chain (and index): matches, counter, action. */
export function ruleBody(table: NftTable, rule: Rule): string {
  return [...matchStatements(table, rule.chain, rule.matches), ...targetStatements(rule.target, rule.family)].join(' ');
}

/** A script line, each of its tokens checked against the safe alphabet. */
export function checkLine(line: string): string {
  for (const token of line.split(' ')) if (!SAFE_TOKEN.test(token)) unsafe('token', token);
  return line;
}
