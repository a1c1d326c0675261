import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { buildPlan } from '../../src/build/plan.js';
import { configFromArgs } from '../../src/config/from.js';
import { fixedHost } from '../../src/config/host.js';
import type { Plan } from '../../src/model/rule.js';
import { traceFlow, type Flow, type TraceResult } from '../../src/trace/index.js';
import { dryRunJson } from '../support/cli.js';
import { ADDRS, APP_GID, APP_UID, PROXY_GID, PROXY_UID, withPod, type Backend, type ConnectSpec, type Pod, type Reply } from './traffic/pod.js';
import { PROXY_LISTENERS, proxyListeners, verdictText } from './traffic/trace-helpers.js';

/**
 * The trace against the kernel: a realistic sidecar's dry-run payloads are loaded into a pod
 * namespace (test/kernel/traffic harness), real connections are made, and whoever answers must be
 * what `traceFlow` predicts from the same plan: the inbound listener on 15006 (REDIRECTed, or
 * TPROXYed with the original destination kept), the outbound listener on 15001, the DNS agent on
 * 15053, or, for `pass`, the listener the connection was addressed to.
 */

type Mode = 'REDIRECT' | 'TPROXY';
type Fam = 'v4' | 'v6';

const SIDECAR = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=true'];
/** Exclusions and DNS capture on top of the sidecar (needs the second NIC). */
const EXTRA = ['-x', `${ADDRS.peer.v4}/32`, '-o', '8443', '-c', 'eth1', '--redirect-dns=true', '--dns-servers', `${ADDRS.peer.v4},${ADDRS.peer.v6}`];
const LOCAL = [ADDRS.pod.v4, ADDRS.pod.v6, ADDRS.pod2.v4, ADDRS.pod2.v6];
const LOOPBACK = { v4: '127.0.0.1', v6: '::1' } as const;
const PASSTHROUGH = { v4: '127.0.0.6', v6: '::6' } as const;

const app = { uid: APP_UID, gid: APP_GID } as const;
/** Envoy's identity: 1337:1337 under REDIRECT; as Istio's injection runs it under TPROXY, 0:1337. */
const proxyOf = (mode: Mode) => (mode === 'REDIRECT' ? { uid: PROXY_UID, gid: PROXY_GID } : { uid: 0, gid: PROXY_GID });

interface Case {
  readonly name: string;
  readonly send: ConnectSpec;
  readonly udp?: boolean;
}

async function planOf(args: readonly string[]): Promise<Plan> {
  return buildPlan((await configFromArgs(args, {}, fixedHost())).capture);
}

/** The flow the kernel sees for a connection the harness makes. */
function flowOf(c: Case): Flow {
  const s = c.send;
  const v6 = s.dst.includes(':');
  const f: Fam = v6 ? 'v6' : 'v4';
  const protocol = c.udp === true ? 'udp' : 'tcp';
  if (s.from === 'peer') {
    const second = s.dst === ADDRS.pod2[f];
    return { direction: 'inbound', protocol, src: second ? ADDRS.peer2[f] : ADDRS.peer[f], sport: 40000, dst: s.dst, dport: s.port, inInterface: second ? 'eth1' : 'eth0' };
  }
  // The kernel's source choice: loopback to loopback, a local address to itself, else eth0's.
  const src = s.src ?? (s.dst === LOOPBACK[f] ? LOOPBACK[f] : (LOCAL as readonly string[]).includes(s.dst) ? s.dst : ADDRS.pod[f]);
  return {
    direction: 'outbound',
    protocol,
    src,
    sport: 40000,
    dst: s.dst,
    dport: s.port,
    ...(s.uid === undefined ? {} : { uid: s.uid }),
    ...(s.gid === undefined ? {} : { gid: s.gid }),
    ...(s.mark === undefined ? {} : { mark: s.mark }),
  };
}

/** What the kernel did, in the trace's terms, from who answered. */
function observed(c: Case, r: Reply): { verdict: TraceResult['verdict']; toPort: number | null } | { error: string } {
  if (r.error !== undefined || r.who === undefined) return { error: r.error ?? 'no answer' };
  const proxyPort = PROXY_LISTENERS[r.who];
  if (proxyPort === undefined) {
    // pass: the listener the connection was addressed to answered, at the address it was sent to.
    expect(r.local, `${c.name}: delivered as addressed`).toEqual([c.send.dst, c.send.port]);
    return { verdict: 'pass', toPort: null };
  }
  // A proxy listener: at its own port it was NATed there; at the original port, TPROXYed.
  if (c.udp === true || r.localPort === proxyPort) return { verdict: 'redirect', toPort: proxyPort };
  expect(r.localPort, `${c.name}: TPROXY keeps the destination port`).toBe(c.send.port);
  return { verdict: 'tproxy', toPort: proxyPort };
}

async function startListeners(pod: Pod, mode: Mode, extra: boolean): Promise<void> {
  const proxy = proxyOf(mode);
  for (const spec of proxyListeners(mode, proxy)) await pod.startListener(spec);
  await pod.startListener({ ns: 'pod', kind: 'plain', port: 15090, name: 'stats', ...proxy });
  await pod.startListener({ ns: 'pod', kind: 'plain', port: 8080, name: 'app', ...app });
  await pod.startListener({ ns: 'peer', kind: 'plain', port: 80, name: 'peer-80' });
  await pod.startListener({ ns: 'peer', kind: 'plain', port: 8443, name: 'peer-8443' });
  if (extra) {
    await pod.startListener({ ns: 'pod', kind: 'udp', port: 15053, name: 'agent-dns', uid: PROXY_UID, gid: PROXY_GID });
    await pod.startListener({ ns: 'peer', kind: 'udp', port: 53, name: 'upstream-dns' });
  }
}

function sidecarCases(mode: Mode, f: Fam): Case[] {
  const proxy = proxyOf(mode);
  const pod = ADDRS.pod[f];
  const peer = ADDRS.peer[f];
  const cases: Case[] = [
    { name: 'inbound to the app port', send: { from: 'peer', dst: pod, port: 8080 } },
    { name: 'inbound to an excluded port', send: { from: 'peer', dst: pod, port: 15090 } },
    { name: 'inbound to the tunnel port', send: { from: 'peer', dst: pod, port: 15008 } },
    { name: 'outbound from the app', send: { from: 'pod', dst: peer, port: 80, ...app } },
    { name: 'outbound from the app, another port', send: { from: 'pod', dst: peer, port: 8443, ...app } },
    { name: 'outbound from the proxy', send: { from: 'pod', dst: peer, port: 80, ...proxy } },
    { name: 'app to localhost', send: { from: 'pod', dst: LOOPBACK[f], port: 8080, ...app } },
    { name: 'app to its own pod IP', send: { from: 'pod', dst: pod, port: 8080, ...app } },
    { name: 'proxy to the pod IP', send: { from: 'pod', dst: pod, port: 8080, ...proxy } },
    { name: 'proxy passthrough from 127.0.0.6/::6', send: { from: 'pod', dst: pod, port: 8080, ...proxy, src: PASSTHROUGH[f] } },
  ];
  if (mode === 'TPROXY') {
    // Envoy's original_src: IP_TRANSPARENT, the client's address, SO_MARK 1337.
    cases.push({ name: 'original_src to the app', send: { from: 'pod', dst: pod, port: 8080, ...proxy, transparent: true, mark: 1337, src: peer } });
    // As 0:1337 the proxy's call to its own pod IP returns in nat (`-o lo ! --uid-owner 1337`) and
    // is TPROXYed on lo thanks to mark 1338; as 1337:1337 nat redirects it to 15006 first.
    cases.push({ name: 'proxy as uid 1337 to the pod IP', send: { from: 'pod', dst: pod, port: 8080, uid: PROXY_UID, gid: PROXY_GID } });
  }
  return cases;
}

function extraCases(mode: Mode, f: Fam): Case[] {
  const proxy = proxyOf(mode);
  return [
    { name: 'outbound to the excluded CIDR (-x, IPv4 only)', send: { from: 'pod', dst: ADDRS.peer[f], port: 80, ...app } },
    { name: 'outbound to an excluded port (-o)', send: { from: 'pod', dst: ADDRS.peer[f], port: 8443, ...app } },
    { name: 'inbound on the excluded interface (-c eth1)', send: { from: 'peer', dst: ADDRS.pod2[f], port: 8080 } },
    { name: 'inbound on eth0', send: { from: 'peer', dst: ADDRS.pod[f], port: 8080 } },
    { name: "the app's DNS query to a listed server", send: { from: 'pod', dst: ADDRS.peer[f], port: 53, ...app }, udp: true },
    { name: "the agent's own DNS query", send: { from: 'pod', dst: ADDRS.peer[f], port: 53, uid: PROXY_UID, gid: PROXY_GID }, udp: true },
    { name: 'the proxy to the pod IP', send: { from: 'pod', dst: ADDRS.pod[f], port: 8080, ...proxy } },
  ];
}

async function check(pod: Pod, plan: Plan, cases: readonly Case[]): Promise<{ name: string; trace: string; kernel: string }[]> {
  const rows: { name: string; trace: string; kernel: string }[] = [];
  for (const c of cases) {
    const flow = flowOf(c);
    const t = traceFlow(plan, flow, { localAddresses: LOCAL });
    const reply = c.udp === true ? await pod.udp(c.send) : await pod.connect(c.send);
    const k = observed(c, reply);
    const name = `${c.name} (${flow.direction} ${flow.protocol} ${flow.src} -> ${flow.dst}:${flow.dport})`;
    rows.push({ name, trace: verdictText(t), kernel: 'error' in k ? `error: ${k.error}` : verdictText(k) });
  }
  return rows;
}

/** Each verdict must be the kernel's; the table of both is printed on failure. */
function expectAgreement(rows: readonly { name: string; trace: string; kernel: string }[]): void {
  const disagreements = rows.filter((r) => r.trace !== r.kernel);
  expect(disagreements, rows.map((r) => `${r.trace === r.kernel ? 'ok  ' : 'DIFF'} ${r.name}: trace=${r.trace} kernel=${r.kernel}`).join('\n')).toEqual([]);
}

describe.each(['nft', 'legacy'] as Backend[])('trace agrees with the kernel, %s backend', (backend) => {
  it.each(['REDIRECT', 'TPROXY'] as Mode[])('realistic %s sidecar: every verdict is who answered (IPv4 and IPv6)', async (mode) => {
    const args = [...SIDECAR, '-m', mode];
    const plan = await planOf(args);
    await withPod({ ipv6: true }, async (pod) => {
      await pod.applyPayloads(await dryRunJson(args), backend);
      await startListeners(pod, mode, false);
      const rows = await check(pod, plan, [...sidecarCases(mode, 'v4'), ...sidecarCases(mode, 'v6')]);
      expectAgreement(rows);
      if (process.env['TRACE_ROWS']) console.log(rows);
      // The cases cover every verdict the mode can give.
      const verdicts = new Set(rows.map((r) => r.kernel));
      expect([...verdicts].sort()).toEqual(mode === 'REDIRECT' ? ['pass', 'redirect 15001', 'redirect 15006'] : ['pass', 'redirect 15001', 'redirect 15006', 'tproxy 15006']);
    });
  });
});

describe('trace agrees with the kernel: exclusions (-x, -o, -c) and DNS capture', () => {
  it.each(['REDIRECT', 'TPROXY'] as Mode[])('%s', async (mode) => {
    const args = [...SIDECAR, '-m', mode, ...EXTRA];
    const plan = await planOf(args);
    await withPod({ ipv6: true, secondNic: true }, async (pod) => {
      await pod.applyPayloads(await dryRunJson(args));
      await startListeners(pod, mode, true);
      const rows = await check(pod, plan, [...extraCases(mode, 'v4'), ...extraCases(mode, 'v6')]);
      expectAgreement(rows);
      expect(rows.filter((r) => r.kernel === 'redirect 15053')).toHaveLength(2);
    });
  });
});

// ------------------------------------------------------------------------------------------------
// The path itself, rule by rule: nftables' packet tracing (nft monitor trace) reports every rule a
// traced packet matches, by handle. A table of our own at priority -350 (before raw) sets nftrace
// on TCP SYNs only, so each connection's first packet is traced, out and (through lo) back in.

const TRACE_TABLE = 'iittrace';
const TRACE_RULES = `table inet ${TRACE_TABLE} {
  chain out { type filter hook output priority -350; tcp flags & (syn | ack) == syn meta nftrace set 1; }
  chain pre { type filter hook prerouting priority -350; tcp flags & (syn | ack) == syn meta nftrace set 1; }
}
`;
const SETTLE_MS = 150;
const SETTLE_MAX_MS = 2_000;

/** Rule handles per `family table chain`, in chain order, from `nft -a list ruleset`. */
function handlesOf(ruleset: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  let table = '';
  let chain = '';
  for (const line of ruleset.split('\n')) {
    const t = /^table (\S+) (\S+) \{/.exec(line);
    if (t) {
      table = `${t[1]} ${t[2]}`;
      continue;
    }
    const c = /^\s+chain (\S+) \{/.exec(line);
    if (c) {
      chain = c[1] ?? '';
      out.set(`${table} ${chain}`, []);
      continue;
    }
    const r = /# handle (\d+)$/.exec(line);
    if (r && chain !== '' && !/^\s+chain /.test(line)) out.get(`${table} ${chain}`)?.push(Number(r[1]));
    if (/^\s+\}$/.test(line)) chain = '';
  }
  return out;
}

interface KernelTracer {
  /** The rules the kernel reports since the last call: `table chain #position`. */
  take(): Promise<string[]>;
  stop(): Promise<void>;
}

async function startTracer(pod: Pod): Promise<KernelTracer> {
  const load = await pod.exec('pod', 'nft', ['-f', '-'], TRACE_RULES);
  if (load.exitCode !== 0) throw new Error(`nft -f: ${load.stderr}`);
  const listed = await pod.exec('pod', 'nft', ['-a', 'list', 'ruleset']);
  const handles = handlesOf(listed.stdout);
  const child = execa('ip', ['netns', 'exec', pod.ns.pod, 'nft', '-a', 'monitor', 'trace'], { reject: false, stdin: 'ignore', buffer: false });
  let text = '';
  child.stdout?.on('data', (d: Buffer) => void (text += d.toString()));
  let consumed = 0;
  // The monitor is listening once a probe SYN (to a closed local port) shows up.
  const started = Date.now();
  while (!text.includes('rule') && Date.now() - started < SETTLE_MAX_MS) {
    await pod.connect({ from: 'pod', dst: '127.0.0.1', port: 9, timeout: 0.2 });
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!text.includes('rule')) {
    child.kill('SIGKILL');
    throw new Error('nft monitor trace reported nothing');
  }
  const settle = async (): Promise<void> => {
    const start = Date.now();
    let last = -1;
    while (last !== text.length && Date.now() - start < SETTLE_MAX_MS) {
      last = text.length;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
    }
  };
  await settle();
  consumed = text.length;
  return {
    async take() {
      await settle();
      const lines = text.slice(consumed).split('\n');
      consumed = text.length;
      const out: string[] = [];
      for (const line of lines) {
        const m = /^trace id \S+ (ip6?|inet) (\S+) (\S+) rule .* # handle (\d+) \(verdict/.exec(line);
        if (!m || m[2] === TRACE_TABLE) continue;
        const list = handles.get(`${m[1]} ${m[2]} ${m[3]}`) ?? [];
        out.push(`${m[2]} ${m[3]} #${list.indexOf(Number(m[4])) + 1}`);
      }
      return out;
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await child;
      clearTimeout(timer);
    },
  };
}

async function comparePaths(pod: Pod, plan: Plan, cases: readonly Case[]): Promise<void> {
  const tracer = await startTracer(pod);
  const rows: string[] = [];
  let differ = 0;
  try {
    for (const c of cases) {
      if (c.udp === true) continue;
      const t = traceFlow(plan, flowOf(c), { localAddresses: LOCAL });
      const reply = await pod.connect(c.send);
      const kernel = await tracer.take();
      const ours = t.path.map((s) => `${s.table} ${s.chain} #${s.position}`);
      const same = JSON.stringify(kernel) === JSON.stringify(ours);
      if (!same) differ++;
      rows.push(`${same ? 'ok  ' : 'DIFF'} ${c.name} -> ${c.send.dst}:${c.send.port} (${reply.who ?? reply.error})\n     trace:  ${ours.join(' | ')}\n     kernel: ${kernel.join(' | ')}`);
    }
  } finally {
    await tracer.stop();
  }
  if (process.env['TRACE_ROWS']) console.log(rows.join('\n'));
  expect(differ, rows.join('\n')).toBe(0);
  // Not vacuous: the kernel reported rules for most connections.
  expect(rows.filter((r) => /kernel: \S/.test(r)).length).toBeGreaterThan(cases.length / 2);
}

describe('the path agrees rule by rule with the kernel (nft monitor trace of each SYN)', () => {
  it.each(['REDIRECT', 'TPROXY'] as Mode[])('realistic %s sidecar', async (mode) => {
    const args = [...SIDECAR, '-m', mode];
    const plan = await planOf(args);
    await withPod({ ipv6: true }, async (pod) => {
      await pod.applyPayloads(await dryRunJson(args), 'nft');
      await startListeners(pod, mode, false);
      await comparePaths(pod, plan, [...sidecarCases(mode, 'v4'), ...sidecarCases(mode, 'v6')]);
    });
  });

  it.each(['REDIRECT', 'TPROXY'] as Mode[])('%s with -x, -o, -c and DNS capture', async (mode) => {
    const args = [...SIDECAR, '-m', mode, ...EXTRA];
    const plan = await planOf(args);
    await withPod({ ipv6: true, secondNic: true }, async (pod) => {
      await pod.applyPayloads(await dryRunJson(args), 'nft');
      await startListeners(pod, mode, true);
      await comparePaths(pod, plan, [...extraCases(mode, 'v4'), ...extraCases(mode, 'v6')]);
    });
  });
});
