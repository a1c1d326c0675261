import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { main } from '../src/cli.js';
import { TRACE_COMMAND, withoutProgram } from '../src/args.js';
import { configFromArgs } from '../src/config/from.js';
import { fixedHost } from '../src/config/host.js';
import { buildPlan } from '../src/build/plan.js';
import type { Plan, Rule } from '../src/model/rule.js';
import { finalChains, traceFlow, TraceError, type Flow, type TraceOptions } from '../src/trace/index.js';

const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const POD = { v4: '10.10.0.2', v6: 'fd10::2' } as const;
const PEER = { v4: '10.10.0.1', v6: 'fd10::1' } as const;
const LOOP = { v4: '127.0.0.1', v6: '::1' } as const;
const LOCAL: TraceOptions = { localAddresses: [POD.v4, POD.v6] };
const FAMS = ['v4', 'v6'] as const;

async function plan(mode: 'REDIRECT' | 'TPROXY', extra: readonly string[] = [], ipv6 = true): Promise<Plan> {
  const config = await configFromArgs([...SIDECAR, '-m', mode, `--enable-ipv6=${ipv6}`, ...extra], {}, fixedHost());
  return buildPlan(config.capture);
}

const inbound = (f: 'v4' | 'v6', dport: number, more: Partial<Flow> = {}): Flow => ({ direction: 'inbound', protocol: 'tcp', src: PEER[f], sport: 40000, dst: POD[f], dport, ...more });
const outbound = (dst: string, dport: number, more: Partial<Flow> = {}, src: string = dst.includes(':') ? POD.v6 : POD.v4): Flow => ({ direction: 'outbound', protocol: 'tcp', src, sport: 40000, dst, dport, ...more });
const app = { uid: 1000, gid: 1000 } as const;
const proxy = { uid: 1337, gid: 1337 } as const;

const rules = (r: ReturnType<typeof traceFlow>): string[] => r.path.map((s) => `${s.hook} ${s.table} ${s.chain} #${s.position} ${s.action}: ${s.rule}`);

describe('REDIRECT sidecar', async () => {
  const p = await plan('REDIRECT');
  it.each(FAMS)('%s: inbound to an app port is redirected to 15006, every rule met is listed in order', (f) => {
    const r = traceFlow(p, inbound(f, 8080), LOCAL);
    expect(r.verdict).toBe('redirect');
    expect(r.toPort).toBe(15006);
    expect(rules(r)).toEqual([
      'PREROUTING nat PREROUTING #1 jump: -A PREROUTING -p tcp -j ISTIO_INBOUND',
      'PREROUTING nat ISTIO_INBOUND #5 jump: -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
      'PREROUTING nat ISTIO_IN_REDIRECT #1 redirect: -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
    ]);
  });

  it.each(FAMS)('%s: an excluded inbound port (-d) and the tunnel port 15008 are not captured', (f) => {
    let r = traceFlow(p, inbound(f, 15090), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass', toPort: null });
    expect(rules(r).at(-1)).toBe('PREROUTING nat ISTIO_INBOUND #2 return: -A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN');
    r = traceFlow(p, inbound(f, 15008), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass', toPort: null });
    expect(rules(r).at(-1)).toBe('PREROUTING nat ISTIO_INBOUND #1 return: -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN');
  });

  it.each(FAMS)('%s: outbound from the app is redirected to 15001; from the proxy uid or gid it is not', (f) => {
    expect(traceFlow(p, outbound(PEER[f], 80, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    const r = traceFlow(p, outbound(PEER[f], 80, proxy), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass', toPort: null });
    expect(rules(r).at(-1)).toBe('OUTPUT nat ISTIO_OUTPUT #4 return: -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN');
    expect(traceFlow(p, outbound(PEER[f], 80, { uid: 0, gid: 1337 }), LOCAL)).toMatchObject({ verdict: 'pass' });
  });

  it.each(FAMS)('%s: localhost is not captured', (f) => {
    const r = traceFlow(p, outbound(LOOP[f], 8080, app, LOOP[f]), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass', toPort: null });
    // lo: the app (not the proxy) on lo returns before the localhost rule.
    expect(rules(r).at(-1)).toBe('OUTPUT nat ISTIO_OUTPUT #3 return: -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN');
  });

  it.each(FAMS)('%s: app to its own pod IP leaves through lo and is not captured; the proxy to the pod IP goes to 15006', (f) => {
    expect(traceFlow(p, outbound(POD[f], 8080, app), LOCAL)).toMatchObject({ verdict: 'pass' });
    // Without knowing the pod's addresses, the destination looks remote (eth0) and is captured.
    expect(traceFlow(p, outbound(POD[f], 8080, app))).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    expect(traceFlow(p, outbound(POD[f], 8080, { ...app, outInterface: 'lo' }))).toMatchObject({ verdict: 'pass' });
    const r = traceFlow(p, outbound(POD[f], 8080, proxy), LOCAL);
    expect(r).toMatchObject({ verdict: 'redirect', toPort: 15006 });
    expect(rules(r)).toContain(`OUTPUT nat ISTIO_OUTPUT #2 jump: -A ISTIO_OUTPUT -o lo ! -d ${LOOP[f]}/${f === 'v4' ? 32 : 128} -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT`);
    // The proxy's inbound passthrough from 127.0.0.6 / ::6 reaches the app.
    const passthrough = f === 'v4' ? '127.0.0.6' : '::6';
    const pt = traceFlow(p, outbound(POD[f], 8080, proxy, passthrough), LOCAL);
    expect(pt).toMatchObject({ verdict: 'pass' });
    expect(rules(pt).at(-1)).toMatch(/#1 return: -A ISTIO_OUTPUT -o lo -s (127\.0\.0\.6\/32|::6\/128) -j RETURN$/);
  });

  it('an IPv6 flow with IPv6 disabled meets no rule', async () => {
    const v4only = await plan('REDIRECT', [], false);
    expect(traceFlow(v4only, inbound('v6', 8080), LOCAL)).toMatchObject({ verdict: 'pass', toPort: null, path: [] });
    const r = traceFlow(v4only, outbound(PEER.v6, 80, app), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass', toPort: null, path: [], reason: { rules: [] } });
    expect(r.reason.text).toBe('IPv6 is not enabled in this plan: no rule applies (false from --enable-ipv6 or $ENABLE_IPV6)');
    expect(traceFlow(v4only, inbound('v4', 8080), LOCAL).verdict).toBe('redirect');
  });

  it('an ESTABLISHED packet meets no nat rule but keeps the NAT its connection got', () => {
    const r = traceFlow(p, inbound('v4', 8080, { state: 'ESTABLISHED' }), LOCAL);
    expect(r).toMatchObject({ verdict: 'redirect', toPort: 15006, path: [] });
    // What decided is what decided for the connection's first packet.
    expect(r.reason).toEqual(traceFlow(p, inbound('v4', 8080), LOCAL).reason);
    expect(r.landing).toEqual({ local: { address: POD.v4, port: 15006 }, peer: { address: PEER.v4, port: 40000 } });
    expect(traceFlow(p, outbound(PEER.v4, 80, { ...app, state: 'ESTABLISHED' }), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001, path: [] });
    expect(traceFlow(p, inbound('v4', 15090, { state: 'ESTABLISHED' }), LOCAL)).toMatchObject({ verdict: 'pass', toPort: null, path: [] });
  });
});

describe('TPROXY sidecar', async () => {
  const p = await plan('TPROXY');
  it.each(FAMS)('%s: inbound is TPROXYed to 15006; the jump sits at its final position after the three inserts', (f) => {
    const r = traceFlow(p, inbound(f, 8080), LOCAL);
    expect(r).toMatchObject({ verdict: 'tproxy', toPort: 15006 });
    expect(rules(r)).toEqual([
      'PREROUTING mangle PREROUTING #1 jump: -A PREROUTING -p tcp -j ISTIO_INBOUND',
      'PREROUTING mangle ISTIO_INBOUND #8 jump: -A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY',
      `PREROUTING mangle ISTIO_TPROXY #1 tproxy: -A ISTIO_TPROXY ! -d ${LOOP[f]}/${f === 'v4' ? 32 : 128} -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006`,
    ]);
  });

  it.each(FAMS)('%s: excluded port passes; the tunnel port is TPROXYed too (its RETURN is in nat, which TPROXY mode does not hook)', (f) => {
    expect(traceFlow(p, inbound(f, 15021), LOCAL)).toMatchObject({ verdict: 'pass' });
    expect(traceFlow(p, inbound(f, 15008), LOCAL)).toMatchObject({ verdict: 'tproxy', toPort: 15006 });
  });

  it.each(FAMS)('%s: outbound from the app goes to 15001, from the proxy (uid 0, gid 1337) straight out, localhost not captured', (f) => {
    expect(traceFlow(p, outbound(PEER[f], 80, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    expect(traceFlow(p, outbound(PEER[f], 80, { uid: 0, gid: 1337 }), LOCAL)).toMatchObject({ verdict: 'pass' });
    expect(traceFlow(p, outbound(LOOP[f], 8080, app, LOOP[f]), LOCAL)).toMatchObject({ verdict: 'pass' });
  });

  it.each(FAMS)('%s: app to its own pod IP comes back through lo and is not diverted (mark is not 1338)', (f) => {
    const r = traceFlow(p, outbound(POD[f], 8080, app), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass' });
    expect(rules(r).slice(-2)).toEqual([
      'PREROUTING mangle PREROUTING #1 jump: -A PREROUTING -p tcp -j ISTIO_INBOUND',
      'PREROUTING mangle ISTIO_INBOUND #3 return: -I ISTIO_INBOUND 3 -p tcp -i lo -m mark ! --mark 1338 -j RETURN',
    ]);
  });

  it.each(FAMS)('%s: the proxy to the pod IP is marked 1338 in mangle and redirected to 15006 in nat; the looped packet is not TPROXYed again', (f) => {
    const r = traceFlow(p, outbound(POD[f], 8080, proxy), LOCAL);
    expect(r).toMatchObject({ verdict: 'redirect', toPort: 15006 });
    const actions = r.path.map((s) => `${s.hook}/${s.table}/${s.action}`);
    expect(actions).toEqual(['OUTPUT/mangle/mark', 'OUTPUT/mangle/mark', 'OUTPUT/nat/jump', 'OUTPUT/nat/jump', 'OUTPUT/nat/redirect', 'PREROUTING/mangle/jump', 'PREROUTING/mangle/jump']);
  });

  it.each(FAMS)("%s: original_src (mark 1337, the client's address) reaches the app; the mark is saved to the connection", (f) => {
    const r = traceFlow(p, outbound(POD[f], 8080, { uid: 0, gid: 1337, mark: 1337 }, PEER[f]), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass' });
    expect(r.path.map((s) => s.action)).toEqual(['return', 'jump', 'return', 'jump', 'return', 'connmark']);
  });

  it('a packet marked 1337 follows the fwmark rule to the local table: out through lo, back through PREROUTING', () => {
    const r = traceFlow(p, outbound('93.184.216.34', 443, { ...app, mark: 1337 }), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass' });
    expect(r.path[0]?.rule).toBe('-A OUTPUT -p tcp -o lo -m mark --mark 1337 -j RETURN');
    expect(r.path.at(-1)).toMatchObject({ hook: 'PREROUTING', action: 'connmark', rule: '-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark' });
  });

  it('an ESTABLISHED inbound packet is diverted (mark 1337, ACCEPT) to the connection the TPROXY made', () => {
    const r = traceFlow(p, inbound('v4', 8080, { state: 'ESTABLISHED' }), LOCAL);
    expect(r).toMatchObject({ verdict: 'tproxy', toPort: 15006 });
    expect(rules(r).slice(1)).toEqual([
      'PREROUTING mangle ISTIO_INBOUND #7 jump: -A ISTIO_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT',
      'PREROUTING mangle ISTIO_DIVERT #1 mark: -A ISTIO_DIVERT -j MARK --set-mark 1337',
      'PREROUTING mangle ISTIO_DIVERT #2 accept: -A ISTIO_DIVERT -j ACCEPT',
    ]);
  });
});

describe('exclusions and options', () => {
  it.each(['REDIRECT', 'TPROXY'] as const)('-x: an excluded CIDR is not captured (%s), the other family still is', async (mode) => {
    const p = await plan(mode, ['-x', `${PEER.v4}/32`]);
    const r = traceFlow(p, outbound(PEER.v4, 80, app), LOCAL);
    expect(r).toMatchObject({ verdict: 'pass' });
    expect(r.path.at(-1)?.rule).toBe(`-A ISTIO_OUTPUT -d ${PEER.v4}/32 -j RETURN`);
    expect(traceFlow(p, outbound('10.10.0.3', 80, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    expect(traceFlow(p, outbound(PEER.v6, 80, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
  });

  it.each(['REDIRECT', 'TPROXY'] as const)('-c: nothing in or out of an excluded interface is captured (%s)', async (mode) => {
    const p = await plan(mode, ['-c', 'eth1']);
    for (const f of FAMS) {
      const r = traceFlow(p, inbound(f, 8080, { inInterface: 'eth1' }), LOCAL);
      expect(r).toMatchObject({ verdict: 'pass' });
      expect(r.path[0]?.rule).toBe('-A PREROUTING -i eth1 -j RETURN');
      expect(traceFlow(p, inbound(f, 8080), LOCAL).verdict).toBe(mode === 'REDIRECT' ? 'redirect' : 'tproxy');
      expect(traceFlow(p, outbound(PEER[f], 80, { ...app, outInterface: 'eth1' }), LOCAL)).toMatchObject({ verdict: 'pass' });
    }
  });

  it('-o: excluded outbound ports are not captured, others are; -q captures a port whatever the CIDR', async () => {
    const p = await plan('REDIRECT', ['-o', '8443,5432']);
    expect(traceFlow(p, outbound(PEER.v4, 8443, app), LOCAL)).toMatchObject({ verdict: 'pass' });
    expect(traceFlow(p, outbound(PEER.v6, 5432, app), LOCAL).path.at(-1)?.rule).toBe('-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN');
    expect(traceFlow(p, outbound(PEER.v4, 443, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    const q = buildPlan((await configFromArgs(['-u', '1337', '-q', '3306', '-i', '10.96.0.0/12'], {}, fixedHost())).capture);
    expect(traceFlow(q, outbound(PEER.v4, 3306, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    expect(traceFlow(q, outbound(PEER.v4, 80, app), LOCAL)).toMatchObject({ verdict: 'pass' });
    expect(traceFlow(q, outbound('10.96.0.10', 80, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
  });

  it('DNS capture: UDP and TCP 53 to a listed server go to 15053 in zone 2; the proxy\'s own queries go upstream in zone 1; other servers are left alone', async () => {
    const p = await plan('REDIRECT', ['--redirect-dns=true', '--dns-servers', `${PEER.v4},${PEER.v6}`]);
    for (const f of FAMS) {
      const udp = traceFlow(p, { ...outbound(PEER[f], 53, app), protocol: 'udp' }, LOCAL);
      expect(udp).toMatchObject({ verdict: 'redirect', toPort: 15053 });
      expect(udp.path[1]?.rule).toBe(`-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d ${PEER[f]}/${f === 'v4' ? 32 : 128} -j CT --zone 2`);
      expect(udp.path.find((s) => s.action === 'redirect')?.rule).toBe(`-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d ${PEER[f]}/${f === 'v4' ? 32 : 128} -j REDIRECT --to-port 15053`);
      // Redirected to loopback, the query comes back in through lo: raw PREROUTING again, nat not.
      expect(udp.path.at(-1)).toMatchObject({ hook: 'PREROUTING', table: 'raw', rule: '-A PREROUTING -j ISTIO_INBOUND' });
      expect(traceFlow(p, outbound(PEER[f], 53, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15053 });
      const agent = traceFlow(p, { ...outbound(PEER[f], 53, proxy), protocol: 'udp' }, LOCAL);
      expect(agent).toMatchObject({ verdict: 'pass' });
      expect(agent.path[1]).toMatchObject({ table: 'raw', action: 'ct', rule: '-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1' });
    }
    // Another server: UDP is never captured otherwise; TCP goes to the proxy as any TCP.
    expect(traceFlow(p, { ...outbound('8.8.8.8', 53, app), protocol: 'udp' }, LOCAL)).toMatchObject({ verdict: 'pass' });
    expect(traceFlow(p, outbound('8.8.8.8', 53, app), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
  });

  it('--drop-invalid: a NEW packet does not meet the DROP rule; an INVALID one is dropped; an ESTABLISHED one passes it', async () => {
    for (const mode of ['REDIRECT', 'TPROXY'] as const) {
      const p = await plan(mode, ['--drop-invalid']);
      const r = traceFlow(p, inbound('v4', 8080), LOCAL);
      expect(r.verdict).toBe(mode === 'REDIRECT' ? 'redirect' : 'tproxy');
      expect(r.path.some((s) => s.chain === 'ISTIO_DROP' || s.rule.includes('INVALID'))).toBe(false);
      const bad = traceFlow(p, inbound('v4', 8080, { state: 'INVALID' }), LOCAL);
      expect(bad).toMatchObject({
        verdict: 'drop',
        toPort: null,
        landing: null,
        path: [
          { hook: 'PREROUTING', table: 'mangle', chain: 'PREROUTING', position: 1, rule: '-A PREROUTING -m conntrack --ctstate INVALID -j ISTIO_DROP', action: 'jump' },
          { hook: 'PREROUTING', table: 'mangle', chain: 'ISTIO_DROP', position: 1, rule: '-A ISTIO_DROP -j DROP', action: 'drop' },
        ],
      });
      expect(bad.path).toHaveLength(2);
      expect(bad.reason.rules).toEqual(['-A PREROUTING -m conntrack --ctstate INVALID -j ISTIO_DROP', '-A ISTIO_DROP -j DROP']);
      expect(bad.reason.text).toContain('(true from --drop-invalid or $INVALID_DROP or $DROP_INVALID)');
      expect(traceFlow(p, inbound('v4', 8080, { state: 'ESTABLISHED' }), LOCAL).verdict).not.toBe('drop');
    }
  });

  it('-k: inbound from a virtual interface is captured as outbound (the insert lands at position 1)', async () => {
    const p = await plan('REDIRECT', ['-k', 'vif0']);
    const r = traceFlow(p, inbound('v4', 80, { inInterface: 'vif0' }), LOCAL);
    expect(r).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    expect(r.path[0]).toMatchObject({ chain: 'PREROUTING', position: 1, rule: '-I PREROUTING 1 -i vif0 -j ISTIO_REDIRECT' });
  });

  it('owner names: a name never matches a numeric id unless a resolver names it', async () => {
    const p = await plan('REDIRECT', ['-u', 'istio-proxy', '-g', 'istio-proxy']);
    expect(traceFlow(p, outbound(PEER.v4, 80, proxy), LOCAL)).toMatchObject({ verdict: 'redirect', toPort: 15001 });
    const resolveOwner = (name: string): number | undefined => (name === 'istio-proxy' ? 1337 : undefined);
    expect(traceFlow(p, outbound(PEER.v4, 80, proxy), { ...LOCAL, resolveOwner })).toMatchObject({ verdict: 'pass' });
  });

  it('supplementary groups do not satisfy --gid-owner (the kernel reads them only with --suppl-groups)', async () => {
    const p = await plan('REDIRECT');
    expect(traceFlow(p, outbound(PEER.v4, 80, app), { ...LOCAL, groups: [1337] })).toMatchObject({ verdict: 'redirect', toPort: 15001 });
  });

  it('chain order replays appends and inserts in issue order, as the kernel does', () => {
    const r = (n: number): Rule => ({ family: 'both', table: 'nat', chain: 'PREROUTING', op: { kind: 'append' }, matches: [{ kind: 'dport', port: n, negate: false }], target: { kind: 'return' }, why: { purpose: 'a test rule', options: [] } });
    const ins = (n: number, at: number): Rule => ({ ...r(n), op: { kind: 'insert', position: at } });
    const order = finalChains([r(1), r(2), ins(3, 1), ins(4, 1), ins(5, 3), r(6)]).get('nat/PREROUTING') ?? [];
    expect(order.map((x) => (x.matches[0]?.kind === 'dport' ? x.matches[0].port : 0))).toEqual([4, 3, 5, 1, 2, 6]);
    expect(() => finalChains([ins(1, 2)])).toThrow(TraceError);
  });

  it('bad flows are refused with a message naming the problem', async () => {
    const p = await plan('REDIRECT');
    expect(() => traceFlow(p, { ...inbound('v4', 8080), dst: '10.0.0.300' })).toThrow(/destination address "10.0.0.300"/);
    expect(() => traceFlow(p, { ...inbound('v4', 8080), src: PEER.v6 })).toThrow(/different families/);
    expect(() => traceFlow(p, inbound('v4', 0))).toThrow(/destination port 0/);
    expect(() => traceFlow(p, inbound('v4', 80), { localAddresses: ['nope'] })).toThrow(/local address "nope"/);
  });
});

// ------------------------------------------------------------------------------------------------
// CLI

const tmp = mkdtempSync(join(tmpdir(), 'iit-trace-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The CLI in-process on the trace subcommand (runCli refuses anything that could apply). */
async function cli(args: readonly string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  if (withoutProgram(args)[0] !== TRACE_COMMAND) throw new Error('not a trace command');
  return runCli(args, {}, fixedHost(), stdin);
}

describe('trace CLI', () => {
  const cfg = [...SIDECAR, '-m', 'REDIRECT'];

  it('human form: each rule met and the verdict; the leading program name is dropped', async () => {
    const r = await cli(['istio-iptables', 'trace', ...cfg, 'outbound', 'tcp', '10.10.0.2', '->', '93.184.216.34:443', 'uid=1000', 'gid=1000']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'flow: outbound tcp 10.10.0.2:40000 -> 93.184.216.34:443 uid=1000 gid=1000 state=new',
        '  OUTPUT  nat  OUTPUT          #1  jump      -A OUTPUT -j ISTIO_OUTPUT',
        '  OUTPUT  nat  ISTIO_OUTPUT    #9  jump      -A ISTIO_OUTPUT -j ISTIO_REDIRECT',
        '  OUTPUT  nat  ISTIO_REDIRECT  #1  redirect  -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
        "verdict: redirect to port 15001: outbound traffic to any destination is captured (* from -i/--istio-service-cidr or $ISTIO_SERVICE_CIDR); captured outbound TCP goes to the proxy's outbound listener (15001 from -p/--envoy-port, the default)",
        'lands on: 127.0.0.1:15001 from 10.10.0.2:40000 (REDIRECT rewrote the destination; the proxy reads the original, 93.184.216.34:443, with SO_ORIGINAL_DST)',
        'the app sees: its peer 93.184.216.34:443 (replies are rewritten back)',
        '',
      ].join('\n'),
    );
  });

  it('human form under TPROXY with --in, IPv6 in brackets, and --output json for one JSON line', async () => {
    let r = await cli(['trace', '-b', '*', '-m', 'TPROXY', '--enable-ipv6=true', 'inbound', 'tcp', '[fd10::1]:40000', '->', '[fd10::2]:8080', '--in', 'eth0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('flow: inbound tcp [fd10::1]:40000 -> [fd10::2]:8080 in=eth0 state=new\n');
    expect(r.stdout).toContain('tproxy  -A ISTIO_TPROXY ! -d ::1/128 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006\n');
    expect(r.stdout).toMatch(/verdict: tproxy to port 15006/);
    r = await cli(['trace', '-b', '*', '-m', 'TPROXY', '--output', 'json', 'inbound', 'tcp', '10.0.0.1:40000', '->', '10.0.0.2:8080']);
    expect(JSON.parse(r.stdout)).toMatchObject({ verdict: 'tproxy', toPort: 15006 });
    expect(r.stdout.split('\n')).toHaveLength(2);
  });

  it('IPv6 disabled: the human form says so', async () => {
    const r = await cli(['trace', ...cfg, 'inbound', 'tcp', 'fd10::1', '->', '[fd10::2]:8080']);
    expect(r.stdout).toContain('  (no rule matched)\nverdict: pass (not captured): IPv6 is not enabled in this plan: no rule applies (false from --enable-ipv6 or $ENABLE_IPV6)\n');
    expect(r.stdout).toContain('verdict: pass');
  });

  it('--local makes the pod IP a local destination', async () => {
    const words = ['outbound', 'tcp', '10.10.0.2', '->', '10.10.0.2:8080', 'uid=1000'];
    expect((await cli(['trace', ...cfg, ...words])).stdout).toContain('verdict: redirect to port 15001');
    expect((await cli(['trace', ...cfg, '--local', '10.10.0.2', ...words])).stdout).toContain('verdict: pass');
    expect((await cli(['trace', ...cfg, ...words, 'out=lo'])).stdout).toContain('verdict: pass');
  });

  const flows = [
    { direction: 'inbound', protocol: 'tcp', src: PEER.v4, sport: 40000, dst: POD.v4, dport: 8080 },
    { direction: 'outbound', protocol: 'tcp', src: POD.v4, sport: 40001, dst: PEER.v4, dport: 80, uid: 1337, gid: 1337 },
    { direction: 'inbound', protocol: 'tcp', src: PEER.v4, sport: 40002, dst: POD.v4, dport: 15090 },
    { direction: 'outbound', protocol: 'tcp', src: POD.v4, sport: 40003, dst: PEER.v4, dport: 80, uid: 1000, gid: 1000, outInterface: 'eth0' },
    { direction: 'inbound', protocol: 'udp', src: PEER.v4, sport: 40004, dst: POD.v4, dport: 53, inInterface: 'eth0', mark: 0, state: 'NEW' },
  ];
  const expected = [
    ['redirect', 15006],
    ['pass', null],
    ['pass', null],
    ['redirect', 15001],
    ['pass', null],
  ];

  it('--flows FILE: JSON lines in, JSON lines out in the same order', async () => {
    const file = join(tmp, 'flows.jsonl');
    writeFileSync(file, `${flows.map((f) => JSON.stringify(f)).join('\n')}\n\n`);
    const r = await cli(['trace', ...cfg, '--flows', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { line: number; flow: unknown; verdict: string; toPort: number | null; path: { rule: string }[] });
    expect(out.map((o) => [o.verdict, o.toPort])).toEqual(expected);
    expect(Object.keys(out[0] ?? {})).toEqual(['line', 'flow', 'verdict', 'toPort', 'reason', 'landing', 'hooks', 'path']);
    // Each result echoes its flow (with the defaults filled in) and its line.
    expect(out.map((o) => o.line)).toEqual([1, 2, 3, 4, 5]);
    expect(out.map((o) => o.flow)).toEqual(flows);
    expect(out[0]?.path.at(-1)).toEqual({
      hook: 'PREROUTING',
      table: 'nat',
      chain: 'ISTIO_IN_REDIRECT',
      position: 1,
      rule: '-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
      action: 'redirect',
      why: { purpose: "captured inbound TCP goes to the proxy's inbound listener", options: [{ key: 'inboundCapturePort', value: '15006' }] },
    });
  });

  it('--flows - reads stdin', async () => {
    const r = await cli(['trace', '--flows=-', ...cfg], flows.map((f) => JSON.stringify(f)).reverse().join('\n'));
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { verdict: string }).verdict)).toEqual(expected.map((e) => e[0]).reverse());
  });

  it.each([
    [['inbound', 'tcp', '10.0.0.1', '->', '10.0.0.300:80'], 'destination "10.0.0.300:80" is not ADDRESS[:PORT]'],
    [['inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2'], 'destination "10.0.0.2" needs a port'],
    [['inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:70000'], 'has no valid port'],
    [['inbound', 'sctp', '10.0.0.1', '->', '10.0.0.2:80'], 'protocol "sctp" is not tcp or udp'],
    [['sideways', 'tcp', '10.0.0.1', '->', '10.0.0.2:80'], 'direction "sideways"'],
    [['inbound', 'tcp', '10.0.0.1'], 'a flow is DIRECTION PROTOCOL'],
    [['inbound', 'tcp', '10.0.0.1', '->', 'in=eth0'], 'a flow is DIRECTION PROTOCOL'],
    [['inbound', 'tcp', '10.0.0.1', '10.0.0.2:80', '--expect', 'captured'], '--expect "captured" is not a verdict'],
    [['inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80', 'uid=1000'], 'uid applies to outbound flows only'],
    [['outbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80', 'uid=x'], 'uid="x" is not a number'],
    [['outbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80', 'colour=red'], 'unknown flow key "colour"'],
    [['outbound', 'tcp', '10.0.0.1', '->', '[fd00::1]:80'], 'not of the same family'],
    [['outbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80', 'state=closing'], 'state "closing"'],
    [['outbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80', 'out=bad/name'], 'outInterface "bad/name"'],
    [[], 'trace needs a flow'],
  ])('bad flow %j: exit 1, one line naming it, nothing on stdout', async (words, message) => {
    const r = await cli(['trace', ...cfg, ...words]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stderr).toMatch(/^istio-iptables: /);
    expect(r.stderr).toContain(message);
  });

  it('a bad line names its number, on stderr and in its place on stdout; the other lines still run; exit 1', async () => {
    const text = [JSON.stringify(flows[0]), JSON.stringify({ ...flows[1], dst: 'example.com' }), '', JSON.stringify(flows[2]), '{not json'].join('\n');
    let r = await cli(['trace', ...cfg, '--flows', '-'], text);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('istio-iptables: --flows line 2: dst "example.com" is not an IPv4 or IPv6 address\nistio-iptables: --flows line 5: not JSON\n');
    const out = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { line: number; verdict?: string; error?: string });
    expect(out.map((o) => [o.line, o.verdict ?? o.error])).toEqual([
      [1, 'redirect'],
      [2, 'dst "example.com" is not an IPv4 or IPv6 address'],
      [4, 'pass'],
      [5, 'not JSON'],
    ]);
    r = await cli(['trace', ...cfg, '--flows', '-'], JSON.stringify({ ...flows[0], extra: 1 }));
    expect(r.stderr).toContain('--flows line 1: unknown flow field "extra"');
    r = await cli(['trace', ...cfg, '--flows', '-'], JSON.stringify({ direction: 'inbound' }));
    expect(r.stderr).toBe('istio-iptables: --flows line 1: protocol is missing (tcp or udp)\n');
    r = await cli(['trace', ...cfg, '--flows', join(tmp, 'missing.jsonl')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^istio-iptables: cannot read --flows .*missing\.jsonl/);
    r = await cli(['trace', ...cfg, '--flows', '-', 'inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80'], '');
    expect(r.stderr).toContain('either a flow or --flows');
  });

  it('config flags behave as in a dry run: values taken verbatim, bad values and unknown flags refused', async () => {
    // -x takes "" and --dns-servers its list; --redirect-dns is boolean and takes no value.
    let r = await cli(['trace', '-x', '', '--redirect-dns', '--dns-servers', '10.10.0.1', '-i', '*', '-u', '1337', 'outbound', 'udp', '10.10.0.2', '->', '10.10.0.1:53', 'uid=1000']);
    expect(r.stdout).toContain('verdict: redirect to port 15053');
    r = await cli(['trace', '-b', 'eighty', 'inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('-b/--istio-inbound-ports');
    r = await cli(['trace', '--no-such-flag', 'inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown flag');
    r = await cli(['trace', ...cfg, '-d', '8080', 'inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:8080']);
    expect(r.stdout).toContain('verdict: pass');
    // Environment variables count as for a dry run.
    let stdout = '';
    await main(['trace', '-i', '*', 'inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:8080'], { env: { ISTIO_INBOUND_PORTS: '8080' }, host: fixedHost(), io: { stdout: (t) => void (stdout += t), stderr: () => {} } });
    expect(stdout).toContain('verdict: redirect to port 15006');
  });

  it('--help shows the trace usage before the flags', async () => {
    const r = await cli(['trace', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: istio-iptables trace/);
    expect(r.stdout).toContain('--istio-inbound-ports');
  });
});
