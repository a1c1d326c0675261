import { describe, expect, it } from 'vitest';
import { buildPlan, configFromObject, fixedHost, renderNft, type Cidr, type ConfigInput, type Plan } from '../src/index.js';
import { coverFree } from '../src/render/nft/sets.js';
import { dryRunJson, runCli } from './support/cli.js';
import { chainLines, loadNftCases } from './support/nft.js';

/**
 * `--nft-sets`: in native nftables mode, rules of one chain that differ only in one destination
 * prefix or port become one rule with an anonymous set, where the first of them sat. Off (the
 * default), the script is Istio's, byte for byte (test/nft.test.ts); kernel-level proof that the
 * same traffic goes to the same place is test/kernel/nft-sets.test.ts.
 */
const plan = (options: ConfigInput): Plan => buildPlan(configFromObject(options, fixedHost({ proxyUid: 1337 })).capture);
const sets = (options: ConfigInput): string => renderNft(plan(options), { sets: true });

/** The rules of every chain once nft has played the script's adds and inserts (`table chain` -> bodies). */
function finalChains(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^(add|insert) rule inet (\S+) (\S+) (?:index (\d+) )?(.*)$/.exec(line);
    if (!m) continue;
    const key = `${m[2]} ${m[3]}`;
    const list = out.get(key) ?? [];
    out.set(key, list);
    if (m[1] === 'insert') list.splice(Number(m[4]), 0, m[5] ?? '');
    else list.push(m[5] ?? '');
  }
  return out;
}

const v4 = (address: string, prefixLength: number): Cidr => ({ family: 'ipv4', address, prefixLength });
const v6 = (address: string, prefixLength: number): Cidr => ({ family: 'ipv6', address, prefixLength });

describe('flag', () => {
  it('is off by default, read from --nft-sets and from NFT_SETS, and reaches the dry run', async () => {
    const args = ['-p', '15001', '-z', '15006', '-u', '1337', '-x', '1.2.3.0/24,5.6.7.0/24', '--native-nftables', '--enable-ipv6=false'];
    const off = (await dryRunJson(args)).nftScript ?? '';
    const flag = (await dryRunJson([...args, '--nft-sets'])).nftScript ?? '';
    const env = (await dryRunJson(args, { NFT_SETS: 'true' })).nftScript ?? '';
    const flagOff = (await dryRunJson([...args, '--nft-sets=false'], { NFT_SETS: 'true' })).nftScript ?? '';
    expect(off).toContain('ip daddr 1.2.3.0/24 counter return\n');
    expect(flag).toContain('ip daddr { 127.0.0.1/32, 1.2.3.0/24, 5.6.7.0/24 } counter return\n');
    expect(env).toBe(flag);
    expect(flagOff).toBe(off);
    expect(configFromObject({ nativeNftables: true }, fixedHost()).run.nftSets).toBe(false);
    expect(configFromObject({ nativeNftables: true, nftSets: true }, fixedHost()).run.nftSets).toBe(true);
  });

  it('is refused without --native-nftables, from the flag or the environment, naming both flags', async () => {
    for (const [args, env] of [
      [['-x', '1.2.3.0/24', '--nft-sets'], {}],
      [['-x', '1.2.3.0/24'], { NFT_SETS: '1' }],
      [['--nft-sets', '--native-nftables=false'], {}],
    ] as const) {
      const r = await runCli([...args, '--dry-run'], env);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('istio-iptables: --nft-sets needs --native-nftables\n');
    }
    expect(() => configFromObject({ nftSets: true }, fixedHost())).toThrow('--nft-sets needs --native-nftables');
    expect((await runCli(['--nft-sets=false', '--dry-run'])).code).toBe(0);
  });

  it('is listed in --help with its environment variable', async () => {
    const r = await runCli(['--help']);
    expect(r.stdout).toContain('--nft-sets');
    expect(r.stdout).toMatch(/--nft-sets[^]*?\[env:\s+NFT_SETS\]/);
  });
});

describe('default output unchanged', () => {
  const { data } = loadNftCases();

  it.each(Object.entries(data.cases))('%s: sets: false renders exactly what no option does', async (_name, extra) => {
    const doc = await dryRunJson([...data.base, ...extra]);
    const off = await dryRunJson([...data.base, ...extra, '--nft-sets=false']);
    expect(off.nftScript).toBe(doc.nftScript);
  });

  it('without sets, long lists that sets would merge keep one rule per value and per plan rule', () => {
    const options = { outboundExcludeCidrs: ['10.0.0.0/8', '10.1.0.0/16', 'fd00::/8'], outboundCidrs: ['192.168.0.0/16', '172.16.0.0/12'], inboundPorts: [80, 81, 82], outboundPorts: [443, 8443], outboundPortsExclude: [3306, 5432], enableIpv6: true } as const;
    const p = plan(options);
    const off = renderNft(p);
    expect(renderNft(p, { sets: false })).toBe(off);
    expect(renderNft(p, {})).toBe(off);
    // The same plan with sets does merge these lists, so the checks below are not vacuous.
    expect(renderNft(p, { sets: true })).toMatch(/daddr \{ 192\.168\.0\.0\/16, 172\.16\.0\.0\/12 \}/);
    expect(renderNft(p, { sets: true })).toMatch(/tcp dport \{ 80, 81, 82 \}/);
    expect(off).not.toMatch(/(daddr|dport) \{/);
    // One script rule per plan rule, and each value of each list in a rule of its own.
    expect(off.split('\n').filter((l) => /^(add|insert) rule /.test(l))).toHaveLength(p.rules.length);
    for (const cidr of [...options.outboundExcludeCidrs, ...options.outboundCidrs]) {
      expect(off.split('\n').filter((l) => l.includes(` daddr ${cidr} counter `))).toHaveLength(1);
    }
    for (const port of options.inboundPorts) expect(chainLines(off, 'nat', 'istio-inbound').filter((l) => l.includes(`tcp dport ${port} counter`))).toHaveLength(1);
    for (const port of options.outboundPorts) expect(chainLines(off, 'nat', 'istio-output').filter((l) => l.endsWith(`tcp dport ${port} counter jump istio-redirect`))).toHaveLength(1);
    for (const port of options.outboundPortsExclude) {
      expect(chainLines(off, 'nat', 'istio-output').filter((l) => / (tcp|udp) dport \d+ counter return$/.test(l) && l.includes(` dport ${port} `))).toHaveLength(2);
    }
  });
});

describe('set rendering', () => {
  it('-x and -i: one rule per family, the loopback return joining the exclusions, in place of the first rule of each run', () => {
    const text = sets({ enableIpv6: true, outboundExcludeCidrs: ['10.96.0.10/32', '10.1.0.0/16', 'fd00::a/128', 'fd00:1::/64'], outboundCidrs: ['10.0.0.0/8', '192.168.0.0/16', 'fd00::/8', '2001:db8::/32'], outboundPorts: [443, 8443] });
    expect(chainLines(text, 'nat', 'istio-output').slice(-5)).toEqual([
      'add rule istio-output ip daddr { 127.0.0.1/32, 10.96.0.10/32, 10.1.0.0/16 } counter return',
      'add rule istio-output ip6 daddr { ::1/128, fd00::a/128, fd00:1::/64 } counter return',
      'add rule istio-output tcp dport { 443, 8443 } counter jump istio-redirect',
      'add rule istio-output ip daddr { 10.0.0.0/8, 192.168.0.0/16 } counter jump istio-redirect',
      'add rule istio-output ip6 daddr { fd00::/8, 2001:db8::/32 } counter jump istio-redirect',
    ]);
  });

  it('-b under REDIRECT, and -d next to the tunnel port, become port sets', () => {
    expect(chainLines(sets({ inboundPorts: [8080, 9090, 7070], enableIpv6: false }), 'nat', 'istio-inbound')).toEqual([
      'add rule istio-inbound meta l4proto tcp tcp dport 15008 counter return',
      'add rule istio-inbound meta l4proto tcp tcp dport { 8080, 9090, 7070 } counter jump istio-in-redirect',
    ]);
    expect(chainLines(sets({ inboundPorts: '*', inboundPortsExclude: [15090, 15021, 15020], enableIpv6: false }), 'nat', 'istio-inbound')).toEqual([
      'add rule istio-inbound meta l4proto tcp tcp dport { 15008, 15090, 15021, 15020 } counter return',
      'add rule istio-inbound meta l4proto tcp counter jump istio-in-redirect',
    ]);
  });

  it('-o: Istio alternates tcp and udp per port; each protocol becomes one set, where its first rule sat', () => {
    const text = sets({ outboundPortsExclude: [3306, 5432, 6379], enableIpv6: false });
    expect(chainLines(text, 'nat', 'istio-output').slice(0, 2)).toEqual([
      'add rule istio-output tcp dport { 3306, 5432, 6379 } counter return',
      'add rule istio-output udp dport { 3306, 5432, 6379 } counter return',
    ]);
  });

  it('TPROXY -b: the alternating divert and tproxy rules per port become one set each, in that order', () => {
    const text = sets({ mode: 'TPROXY', inboundPorts: [8080, 9090], enableIpv6: false });
    expect(finalChains(text).get('istio-proxy-mangle istio-inbound')).toEqual([
      'meta l4proto tcp mark 1337 counter return',
      'iifname lo meta l4proto tcp ip saddr 127.0.0.6/32 counter return',
      'iifname lo meta l4proto tcp mark != 1338 counter return',
      'meta l4proto tcp ct state related,established tcp dport { 8080, 9090 } counter jump istio-divert',
      'meta l4proto tcp tcp dport { 8080, 9090 } counter jump istio-tproxy',
    ]);
  });

  it('TPROXY -d: inserts in front of the set land where they land without sets (indexes recomputed)', () => {
    const options = { mode: 'TPROXY', inboundPorts: '*', inboundPortsExclude: [15090, 15021, 15020], enableIpv6: true } as const;
    const off = finalChains(renderNft(plan(options))).get('istio-proxy-mangle istio-inbound') ?? [];
    const on = finalChains(sets(options)).get('istio-proxy-mangle istio-inbound') ?? [];
    expect(off.filter((r) => !/dport 150(90|21|20) /.test(r))).toEqual(on.filter((r) => !r.includes('{')));
    const at = off.findIndex((r) => r.includes('dport 15090 '));
    expect(on[at]).toBe('meta l4proto tcp tcp dport { 15090, 15021, 15020 } counter return');
    expect(on).toHaveLength(off.length - 2);
  });

  it('kube-virt inserts: the set goes in at index 0 as the rules did', () => {
    const text = sets({ outboundCidrs: ['10.0.0.0/8', '192.168.0.0/16'], kubeVirtInterfaces: ['vnet0'], enableIpv6: false });
    expect(chainLines(text, 'nat', 'prerouting')).toEqual([
      'add rule prerouting iifname vnet0 counter return',
      'insert rule prerouting index 0 iifname vnet0 ip daddr { 192.168.0.0/16, 10.0.0.0/8 } counter jump istio-redirect',
    ]);
  });

  it('leaves negated matches, single values and rules with different actions alone', () => {
    const text = sets({ inboundPorts: '*', enableIpv6: false, outboundExcludeCidrs: [] });
    const off = renderNft(plan({ inboundPorts: '*', enableIpv6: false, outboundExcludeCidrs: [] }));
    // Nothing to merge in the sidecar without lists: the scripts agree.
    expect(text).toBe(off);
  });

  it('keeps every rule of a long list in one line, within the safe alphabet', () => {
    const cidrs = Array.from({ length: 2000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const text = sets({ outboundExcludeCidrs: cidrs, enableIpv6: false });
    const line = chainLines(text, 'nat', 'istio-output').find((l) => l.includes('10.7.207.0/24'));
    expect(line?.split(', ')).toHaveLength(2001);
    expect(chainLines(text, 'nat', 'istio-output').filter((l) => / ip daddr [^!]/.test(l))).toHaveLength(1);
  });
});

describe('overlapping prefixes', () => {
  it('drops prefixes covered by another of the same set, and duplicates (host bits ignored)', () => {
    expect(coverFree([v4('10.1.0.0', 16), v4('10.0.0.0', 8), v4('10.1.2.3', 32), v4('11.0.0.0', 8)])).toEqual([v4('10.0.0.0', 8), v4('11.0.0.0', 8)]);
    expect(coverFree([v4('10.1.2.3', 8), v4('10.0.0.0', 8)])).toEqual([v4('10.1.2.3', 8)]);
    expect(coverFree([v4('1.2.3.4', 32), v4('1.2.3.4', 32), v4('1.2.3.5', 32)])).toEqual([v4('1.2.3.4', 32), v4('1.2.3.5', 32)]);
    expect(coverFree([v4('10.0.0.0', 25), v4('10.0.0.128', 25)])).toEqual([v4('10.0.0.0', 25), v4('10.0.0.128', 25)]);
    expect(coverFree([v4('1.2.3.4', 32), v4('0.0.0.0', 0)])).toEqual([v4('0.0.0.0', 0)]);
    expect(coverFree([v6('fd00:1::', 64), v6('fd00::', 8), v6('fe80::1', 128), v6('::1', 128)])).toEqual([v6('fd00::', 8), v6('fe80::1', 128), v6('::1', 128)]);
  });

  it('renders a set without covered prefixes; one survivor is a plain match', () => {
    const text = sets({ outboundExcludeCidrs: ['10.1.0.0/16', '10.0.0.0/8', '10.1.2.3/32', '192.168.1.0/24'], outboundCidrs: ['172.16.0.0/12', '172.16.5.0/24'], enableIpv6: false });
    expect(text).toContain('add rule inet istio-proxy-nat istio-output ip daddr { 127.0.0.1/32, 10.0.0.0/8, 192.168.1.0/24 } counter return\n');
    expect(text).toContain('add rule inet istio-proxy-nat istio-output ip daddr 172.16.0.0/12 counter jump istio-redirect\n');
    expect(text).not.toContain('10.1.0.0/16');
    expect(text).not.toContain('172.16.5.0/24');
  });

  it('-x 0.0.0.0/0 swallows the whole set, the loopback return included', () => {
    const text = sets({ outboundExcludeCidrs: ['1.2.3.0/24', '0.0.0.0/0'], enableIpv6: false });
    expect(chainLines(text, 'nat', 'istio-output').filter((l) => l.includes(' daddr ') && !l.includes('!='))).toEqual(['add rule istio-output ip daddr 0.0.0.0/0 counter return']);
  });
});
