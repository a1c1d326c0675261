import { describe, expect, it } from 'vitest';
import { buildPlan, configFromObject, fixedHost, renderNft, type ConfigInput, type Plan, type Rule } from '../src/index.js';
import { familyRules } from '../src/build/plan.js';
import { chainKey, replayChains } from '../src/model/replay.js';

/**
 * The plan holds each rule once with its family (both, IPv4 only, IPv6 only), in Istio's issue
 * order; the per-family views iptables is given are filtered from it, and the nft script is it.
 */
const plan = (options: ConfigInput): Plan => buildPlan(configFromObject(options, fixedHost({ proxyUid: 1337 })).capture);

/** The families of a rule's addresses (source, destination). */
const addressFamilies = (r: Rule): Set<string> => new Set(r.matches.flatMap((x) => (x.kind === 'source' || x.kind === 'destination' ? [x.cidr.family] : [])));

const CONFIGS: Record<string, ConfigInput> = {
  'sidecar REDIRECT': { inboundPorts: '*', outboundCidrs: '*', inboundPortsExclude: [15090, 15021, 15020], enableIpv6: false },
  'TPROXY dual stack': { mode: 'TPROXY', inboundPorts: '*', outboundCidrs: '*', enableIpv6: true },
  'CIDR lists dual stack': { outboundCidrs: ['10.0.0.0/8', 'fd00::/8'], outboundExcludeCidrs: ['10.96.0.10/32', 'fd00::a/128'], kubeVirtInterfaces: ['vnet0'], outboundPorts: [443], enableIpv6: true },
  'DNS both families': { redirectDns: true, dnsServers: ['10.96.0.10', 'fd00::a'], enableIpv6: true, proxyGids: [1337, 1338] },
  'DNS IPv6 only, IPv6 on': { redirectDns: true, dnsServers: ['fd00::a'], enableIpv6: true },
  'DNS IPv6 only, IPv6 off': { redirectDns: true, dnsServers: ['fd00::a'], enableIpv6: false },
  'capture all DNS': { redirectDns: true, captureAllDns: true, enableIpv6: true, dropInvalid: true },
};

describe('each rule carries its family', () => {
  it.each(Object.entries(CONFIGS))('%s: the per-family views are the plan filtered by family, in order', (_name, options) => {
    const p = plan(options);
    expect(p.rules.length).toBeGreaterThan(0);
    expect(p.ipv4.rules).toEqual(p.rules.filter((r) => r.family !== 'ipv6'));
    // The same rule objects, not copies.
    p.ipv4.rules.forEach((r) => expect(p.rules).toContain(r));
    if (p.ipv6 === null) {
      expect(options.enableIpv6).toBe(false);
      expect(p.rules.filter((r) => r.family === 'ipv6')).toEqual([]);
    } else {
      expect(p.ipv6.rules).toEqual(p.rules.filter((r) => r.family !== 'ipv4'));
    }
    expect(familyRules(p.rules, 'ipv4')).toEqual(p.ipv4);
  });

  it.each(Object.entries(CONFIGS))('%s: a rule with an address is of that address\'s family; TPROXY never shared', (_name, options) => {
    for (const r of plan(options).rules) {
      const families = addressFamilies(r);
      expect(families.size).toBeLessThanOrEqual(1);
      if (families.size === 1) expect([...families]).toEqual([r.family]);
      if (r.target.kind === 'tproxy') expect(r.family).not.toBe('both');
    }
  });

  it.each(Object.entries(CONFIGS))('%s: the nft script writes each plan rule once', (_name, options) => {
    const p = plan(options);
    expect(renderNft(p).split('\n').filter((l) => /^(add|insert) rule /.test(l))).toHaveLength(p.rules.length);
  });

  it('a rule shared by both families is one rule; a per-family value gives a pair, IPv4 then IPv6, side by side', () => {
    const p = plan(CONFIGS['TPROXY dual stack'] as ConfigInput);
    const jump = p.rules.filter((r) => r.table === 'mangle' && r.chain === 'PREROUTING' && r.target.kind === 'jump');
    expect(jump.map((r) => r.family)).toEqual(['both']);
    const tproxy = p.rules.filter((r) => r.target.kind === 'tproxy');
    expect(tproxy.map((r) => r.family)).toEqual(['ipv4', 'ipv6']);
    expect(p.rules.indexOf(tproxy[1] as Rule)).toBe(p.rules.indexOf(tproxy[0] as Rule) + 1);
    const passthrough = p.rules.filter((r) => r.table === 'mangle' && r.matches.some((x) => x.kind === 'source'));
    expect(passthrough.map((r) => [r.family, r.op])).toEqual([
      ['ipv4', { kind: 'insert', position: 2 }],
      ['ipv6', { kind: 'insert', position: 2 }],
    ]);
  });

  it('the jumps to the DNS chains: one shared rule when both families need them, else the one family\'s', () => {
    const dnsJumps = (p: Plan) => p.rules.filter((r) => r.target.kind === 'jump' && (r.target.chain === 'ISTIO_OUTPUT_DNS' || (r.table === 'raw' && r.chain === 'PREROUTING'))).map((r) => `${r.table} ${r.family}`);
    expect(dnsJumps(plan(CONFIGS['DNS both families'] as ConfigInput))).toEqual(['raw both', 'nat both', 'raw both']);
    expect(dnsJumps(plan(CONFIGS['DNS IPv6 only, IPv6 on'] as ConfigInput))).toEqual(['raw both', 'nat ipv6', 'raw ipv6']);
    expect(dnsJumps(plan(CONFIGS['DNS IPv6 only, IPv6 off'] as ConfigInput))).toEqual(['raw both']);
    expect(dnsJumps(plan(CONFIGS['capture all DNS'] as ConfigInput))).toEqual(['raw both', 'nat both', 'raw both']);
  });

  it('per-family loops: IPv4\'s rules, then IPv6\'s', () => {
    const p = plan(CONFIGS['DNS both families'] as ConfigInput);
    const zones = p.rules.filter((r) => r.table === 'raw' && r.family !== 'both');
    expect(zones.map((r) => `${r.family} ${r.chain}`)).toEqual(['ipv4 ISTIO_OUTPUT_DNS', 'ipv4 ISTIO_INBOUND', 'ipv6 ISTIO_OUTPUT_DNS', 'ipv6 ISTIO_INBOUND']);
  });
});

describe('replayChains: -A and -I in issue order, as the kernel holds them', () => {
  const r = (chain: string, n: number, position?: number): Rule => ({
    family: 'both',
    table: 'nat',
    chain: chain as Rule['chain'],
    op: position === undefined ? { kind: 'append' } : { kind: 'insert', position },
    matches: [{ kind: 'dport', port: n, negate: false }],
    target: { kind: 'return' },
    why: { purpose: 'a test rule', options: [] },
  });
  const ports = (rules: readonly Rule[] | undefined): number[] => (rules ?? []).map((x) => (x.matches[0]?.kind === 'dport' ? x.matches[0].port : 0));

  it('appends last, inserts at position n-1, per chain', () => {
    const chains = replayChains([r('PREROUTING', 1), r('OUTPUT', 10), r('PREROUTING', 2), r('PREROUTING', 3, 1), r('OUTPUT', 11, 1), r('PREROUTING', 4, 3), r('PREROUTING', 5, 1)], (x) => x);
    expect([...chains.keys()]).toEqual([chainKey('nat', 'PREROUTING'), chainKey('nat', 'OUTPUT')]);
    expect(ports(chains.get('nat/PREROUTING'))).toEqual([5, 3, 1, 4, 2]);
    expect(ports(chains.get('nat/OUTPUT'))).toEqual([11, 10]);
  });

  it('tells where each rule went in: its index, or undefined when it went in last', () => {
    const seen: [number, number | undefined][] = [];
    replayChains([r('PREROUTING', 1), r('PREROUTING', 2, 1), r('PREROUTING', 3, 3), r('PREROUTING', 4, 2), r('PREROUTING', 5, 9)], (x) => x, {
      placed: (x, index) => seen.push([ports([x])[0] as number, index]),
    });
    expect(seen).toEqual([[1, undefined], [2, 0], [3, undefined], [4, 1], [5, undefined]]);
  });

  it('by default appends an insert past the end and refuses a position below 1 or not whole; a handler decides otherwise', () => {
    expect(ports(replayChains([r('OUTPUT', 1), r('OUTPUT', 2, 5)], (x) => x).get('nat/OUTPUT'))).toEqual([1, 2]);
    expect(() => replayChains([r('OUTPUT', 1, 0)], (x) => x)).toThrow(RangeError);
    expect(() => replayChains([r('OUTPUT', 1, 1.5)], (x) => x)).toThrow(RangeError);
    const refused: number[] = [];
    expect(() =>
      replayChains([r('OUTPUT', 1), r('OUTPUT', 2, 3)], (x) => x, {
        outOfRange: (x, length) => {
          refused.push(length);
          throw new Error(`no ${ports([x])[0]}`);
        },
      }),
    ).toThrow('no 2');
    expect(refused).toEqual([1]);
  });
});
