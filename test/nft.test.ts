import { describe, expect, it } from 'vitest';
import { buildPlan, configFromObject, fixedHost, renderNft, type ConfigInput, type Match, type Plan, type Rule } from '../src/index.js';
import { dryRunJson, runCli } from './support/cli.js';
import { chainLines, loadNftCases } from './support/nft.js';

/**
 * The nft renderer: byte-identical to Istio's `--native-nftables` scripts where the plan allows
 * (kernel-level equality for all cases is test/kernel/nft-conformance.test.ts), Istio's statement
 * order for dual-stack shapes its test data does not cover, and refusal of anything outside the
 * safe alphabet.
 */
const { data, expected } = loadNftCases();

/**
 * Cases whose script differs from Istio's in spelling only, with the one substitution that makes
 * them equal. The plan holds IPv6 addresses in canonical form (`::7f00:35`); Istio echoes the
 * nameserver as it was written (`::127.0.0.53`). nft loads both to the same address.
 */
const SPELLING: Record<string, [string, string]> = {
  'dns-uid-gid': ['::127.0.0.53', '::7f00:35'],
};

async function script(args: readonly string[]): Promise<string> {
  const doc = await dryRunJson(args);
  if (typeof doc.nftScript !== 'string') throw new Error('no nftScript in nft mode');
  return doc.nftScript;
}

const plan = (options: ConfigInput): Plan => buildPlan(configFromObject(options, fixedHost({ proxyUid: 1337 })).capture);

describe('byte-identical to Istio\'s scripts', () => {
  const names = Object.keys(data.cases);

  it('covers all 18 cases, 17 of them byte for byte', () => {
    expect(names).toHaveLength(18);
    expect(names.filter((n) => !(n in SPELLING))).toHaveLength(17);
  });

  it.each(names.filter((n) => !(n in SPELLING)))('%s', async (name) => {
    expect(await script([...data.base, ...(data.cases[name] ?? [])])).toBe(expected(name));
  });

  it.each(Object.entries(SPELLING))('%s differs only in the spelling of one IPv6 address', async (name, [istio, ours]) => {
    const text = expected(name);
    expect(text).toContain(istio);
    const mine = await script([...data.base, ...(data.cases[name] ?? [])]);
    expect(mine).not.toBe(text);
    expect(mine).toBe(text.replaceAll(istio, ours));
  });

  it('renders the library plan exactly as the dry run does', async () => {
    const p = plan({ inboundPorts: [32000, 31000], mode: 'TPROXY', enableIpv6: false });
    expect(renderNft(p)).toBe(expected('inbound-ports-tproxy'));
  });
});

describe('dual stack beyond Istio\'s test data, in Istio\'s statement order', () => {
  it('TPROXY: per-family pairs side by side, and the passthrough inserts both at index 1', () => {
    const text = renderNft(plan({ inboundPorts: '*', mode: 'TPROXY', outboundCidrs: '*', enableIpv6: true }));
    expect(chainLines(text, 'mangle', 'istio-tproxy')).toEqual([
      'add rule istio-tproxy meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to :15006 meta mark set 1337 counter accept',
      'add rule istio-tproxy meta l4proto tcp ip6 daddr != ::1/128 tproxy ip6 to :15006 meta mark set 1337 counter accept',
    ]);
    expect(chainLines(text, 'mangle', 'istio-inbound').slice(-4)).toEqual([
      'insert rule istio-inbound index 0 meta l4proto tcp mark 1337 counter return',
      'insert rule istio-inbound index 1 iifname lo meta l4proto tcp ip saddr 127.0.0.6/32 counter return',
      'insert rule istio-inbound index 1 iifname lo meta l4proto tcp ip6 saddr ::6/128 counter return',
      'insert rule istio-inbound index 2 iifname lo meta l4proto tcp mark != 1338 counter return',
    ]);
    expect(chainLines(text, 'mangle', 'output')).toEqual([
      'add rule output oifname lo meta l4proto tcp mark 1337 counter return',
      'add rule output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 skuid 1337 counter meta mark set 1338',
      'add rule output oifname lo meta l4proto tcp ip6 daddr != ::1/128 skuid 1337 counter meta mark set 1338',
      'add rule output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 skgid 1337 counter meta mark set 1338',
      'add rule output oifname lo meta l4proto tcp ip6 daddr != ::1/128 skgid 1337 counter meta mark set 1338',
      'add rule output meta l4proto tcp ct mark 1337 counter meta mark set ct mark',
    ]);
  });

  it('CIDRs: loopback pair, then the IPv4 then the IPv6 exclusions, ports, then inclusions per family', () => {
    const text = renderNft(
      plan({
        enableIpv6: true,
        outboundExcludeCidrs: ['10.96.0.10/32', '10.1.0.0/16', 'fd00::a/128'],
        outboundCidrs: ['10.0.0.0/8', 'fd00::/8'],
        kubeVirtInterfaces: ['vnet0'],
        outboundPorts: [443],
      }),
    );
    expect(chainLines(text, 'nat', 'istio-output').slice(-8)).toEqual([
      'add rule istio-output ip daddr 127.0.0.1/32 counter return',
      'add rule istio-output ip6 daddr ::1/128 counter return',
      'add rule istio-output ip daddr 10.96.0.10/32 counter return',
      'add rule istio-output ip daddr 10.1.0.0/16 counter return',
      'add rule istio-output ip6 daddr fd00::a/128 counter return',
      'add rule istio-output tcp dport 443 counter jump istio-redirect',
      'add rule istio-output ip daddr 10.0.0.0/8 counter jump istio-redirect',
      'add rule istio-output ip6 daddr fd00::/8 counter jump istio-redirect',
    ]);
    expect(chainLines(text, 'nat', 'prerouting')).toEqual([
      'add rule prerouting iifname vnet0 counter return',
      'insert rule prerouting index 0 iifname vnet0 ip daddr 10.0.0.0/8 counter jump istio-redirect',
      'insert rule prerouting index 0 iifname vnet0 ip6 daddr fd00::/8 counter jump istio-redirect',
    ]);
  });

  it('DNS: one jump when any family has servers; TCP loops then UDP loops; raw zones per family', () => {
    const v4only = renderNft(plan({ enableIpv6: true, redirectDns: true, dnsServers: ['10.96.0.10'] }));
    expect(chainLines(v4only, 'nat', 'istio-output').filter((l) => l.includes('istio-output-dns'))).toEqual(['add rule istio-output counter jump istio-output-dns']);
    const both = renderNft(plan({ enableIpv6: true, redirectDns: true, dnsServers: ['10.96.0.10', '10.96.0.11', 'fd00::a'] }));
    expect(chainLines(both, 'nat', 'istio-output-dns')).toEqual([
      'add rule istio-output-dns ip daddr 10.96.0.10/32 tcp dport 53 counter redirect to :15053',
      'add rule istio-output-dns ip daddr 10.96.0.11/32 tcp dport 53 counter redirect to :15053',
      'add rule istio-output-dns ip6 daddr fd00::a/128 tcp dport 53 counter redirect to :15053',
      'add rule istio-output-dns ip daddr 10.96.0.10/32 udp dport 53 counter redirect to :15053',
      'add rule istio-output-dns ip daddr 10.96.0.11/32 udp dport 53 counter redirect to :15053',
      'add rule istio-output-dns ip6 daddr fd00::a/128 udp dport 53 counter redirect to :15053',
    ]);
    expect(chainLines(both, 'raw', 'istio-inbound')).toEqual([
      'add rule istio-inbound udp sport 53 ip saddr 10.96.0.10/32 counter ct zone set 1',
      'add rule istio-inbound udp sport 53 ip saddr 10.96.0.11/32 counter ct zone set 1',
      'add rule istio-inbound udp sport 53 ip6 saddr fd00::a/128 counter ct zone set 1',
    ]);
    const all = renderNft(plan({ enableIpv6: true, redirectDns: true, captureAllDns: true }));
    expect(chainLines(all, 'nat', 'istio-output-dns')).toEqual([
      'add rule istio-output-dns meta l4proto tcp tcp dport 53 counter redirect to :15053',
      'add rule istio-output-dns udp dport 53 counter redirect to :15053',
    ]);
  });
});

/** The plan with every rule passed through `patch` (the nft script is rendered from `rules`). */
function patched(p: Plan, patch: (r: Rule) => Rule): Plan {
  return { ...p, rules: p.rules.map(patch) };
}
const patchMatch = (p: Plan, kind: Match['kind'], f: (m: Match) => Match): Plan =>
  patched(p, (r) => ({ ...r, matches: r.matches.map((m) => (m.kind === kind ? f(m) : m)) }));

describe('names and refusal of unsafe tokens', () => {
  const base = plan({ mode: 'TPROXY', inboundPorts: '*', excludeInterfaces: ['eth1'], enableIpv6: false });

  it('quotes names nft would not read as one plain string, and turns eth+ into "eth*"', () => {
    const withName = (name: string): string => renderNft(patchMatch(base, 'inInterface', (m) => (m.kind === 'inInterface' && m.name === 'eth1' ? { ...m, name } : m)));
    expect(withName('eth1')).toContain('prerouting iifname eth1 counter return');
    expect(withName('not-istio-nic')).toContain('iifname not-istio-nic counter');
    expect(withName('counter')).toContain('iifname "counter" counter return');
    expect(withName('return')).toContain('iifname "return" counter return');
    expect(withName('0abc')).toContain('iifname "0abc" counter');
    expect(withName('a@b')).toContain('iifname "a@b" counter');
    expect(withName('veth+')).toContain('iifname "veth*" counter');
    expect(renderNft(base)).toContain('oifname lo ');
  });

  const hostileNames = ['eth0 accept', 'a"b', 'x;y', 'a\nb', '', '{', 'eth0}', '#c', 'a b', 'a\tb', "a'b", 'a$b', 'a*', '+', 'a+b', 'a\\b', 'é'];

  it.each(hostileNames)('refuses interface name %j', (name) => {
    const p = patchMatch(base, 'inInterface', (m) => (m.kind === 'inInterface' ? { ...m, name } : m));
    expect(() => renderNft(p)).toThrow(/refusing to render unsafe/);
  });

  it.each(hostileNames)('refuses owner name %j', (name) => {
    const p = patchMatch(base, 'uidOwner', (m) => (m.kind === 'uidOwner' ? { ...m, id: name } : m));
    expect(() => renderNft(p)).toThrow(/refusing to render unsafe/);
  });

  it.each(['127.0.0.1 accept', '1.2.3.4/32 counter', 'x', 'abc', '1.2.3', '::1/128 }', '127.0.0.1/8'])('refuses address %j', (address) => {
    const p = patchMatch(base, 'destination', (m) => (m.kind === 'destination' ? { ...m, cidr: { ...m.cidr, address } } : m));
    expect(() => renderNft(p)).toThrow(/refusing to render unsafe/);
  });

  it.each([-1, 65536, 1.5, Number.NaN])('refuses port %s', (port) => {
    const p = patchMatch(base, 'dport', (m) => (m.kind === 'dport' ? { ...m, port } : m));
    expect(() => renderNft(p)).toThrow(/refusing to render unsafe/);
  });

  it('refuses a mark or uid outside 32 bits, and an insert position below 1', () => {
    expect(() => renderNft(patchMatch(base, 'mark', (m) => (m.kind === 'mark' ? { ...m, mark: 2 ** 32 } : m)))).toThrow(/refusing to render unsafe/);
    expect(() => renderNft(patchMatch(base, 'uidOwner', (m) => (m.kind === 'uidOwner' ? { ...m, id: -1 } : m)))).toThrow(/refusing to render unsafe/);
    expect(() => renderNft(patched(base, (r) => (r.op.kind === 'insert' ? { ...r, op: { kind: 'insert', position: 0 } } : r)))).toThrow(/refusing to render unsafe/);
  });

  it('refuses rules with no counterpart in Istio\'s nft tables', () => {
    expect(() => renderNft(patched(base, (r) => ({ ...r, table: 'filter' })))).toThrow(/filter/);
    expect(() => renderNft(patched(base, (r) => (r.chain === 'PREROUTING' ? { ...r, chain: 'FORWARD' } : r)))).toThrow(/FORWARD/);
  });

  it('renders nothing for a plan without rules', () => {
    expect(renderNft({ ...base, rules: [] })).toBe('');
  });
});

describe('dry-run outputs', () => {
  const args = [...data.base, '-b', '*'];

  it('JSON: nftScript in nft mode, next to the unchanged restore payloads', async () => {
    const nft = await dryRunJson(args);
    const ipt = await dryRunJson(args.filter((a) => a !== '--native-nftables'));
    expect(nft.nftScript).toBe(expected('inbound-ports-wildcard'));
    expect(nft.iptablesRestore).toBe(ipt.iptablesRestore);
    expect(nft.ip6tablesRestore).toBe(ipt.ip6tablesRestore);
    expect(ipt).not.toHaveProperty('nftScript');
  });

  it('text: the script under "# nft -f -" in nft mode only', async () => {
    const nft = await runCli([...args, '--native-nftables=true']);
    const ipt = await runCli(args.filter((a) => a !== '--native-nftables'));
    expect(nft.code).toBe(0);
    expect(nft.stdout).toContain(`\n# nft -f -\n${expected('inbound-ports-wildcard')}\n# Routing: none\n`);
    expect(nft.stdout.replace(`# nft -f -\n${expected('inbound-ports-wildcard')}\n`, '')).toBe(ipt.stdout);
    expect(ipt.stdout).not.toContain('# nft');
  });
});
