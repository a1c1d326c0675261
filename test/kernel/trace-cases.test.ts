import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPlan } from '../../src/build/plan.js';
import type { CaptureConfig } from '../../src/config/config.js';
import { configFromArgs } from '../../src/config/from.js';
import { parseAddress } from '../../src/config/net.js';
import { fixedHost } from '../../src/config/host.js';
import type { Plan } from '../../src/model/rule.js';
import { traceFlow, type Flow } from '../../src/trace/index.js';
import { conformanceCases, dryRunJson, type ConformanceCase } from '../support/cli.js';
import { ADDRS, AGENT, APP_GID, APP_UID, PROXY_GID, PROXY_UID, withPod, type ConnectSpec, type ListenerSpec, type Pod, type Reply } from './traffic/pod.js';
import { PROXY_LISTENERS, proxyListeners, verdictText } from './traffic/trace-helpers.js';

/**
 * The trace against the kernel for every conformance case (golden/istio and golden/istio-extra):
 * each case's dry-run payloads are loaded into a fresh pod namespace (test/kernel/traffic harness),
 * a matrix of real flows is sent (inbound TCP on three NICs, outbound TCP and UDP from the app, the
 * proxy's identities and every owner the case names, to addresses inside and outside its CIDRs, to
 * localhost, to the pod's own addresses, DNS), and whoever answered must be what `traceFlow`
 * predicts from the plan built from the same arguments.
 *
 * Flows only ever go between the pod and its peer namespace. Thousands of flows would take minutes
 * as one `python3 agent.py connect` process each (~70 ms of interpreter start-up apiece), so they
 * are run by a small driver inside the namespace that loads the harness's own agent.py once and
 * runs its `connect` / `udp` client (the very functions the harness's `pod.connect` / `pod.udp`
 * run) in a forked child per flow, a bounded number at a time. A few flows per case also go through
 * `pod.connect` / `pod.udp` themselves, and must give the same answer as the driver.
 *
 * Left out on purpose:
 * - replies and later packets of a connection: every flow here is a connection's first packet
 *   (the harness cannot stop a connection half-way to show where its later packets went; the
 *   trace's `state: ESTABLISHED` is covered by test/trace.test.ts);
 * - INVALID packets, so the `drop` verdict (--drop-invalid): the harness only makes real sockets,
 *   which never send a conntrack-INVALID first packet;
 * - forwarded traffic (the pod routes nothing) and peer traffic to addresses other than the pod's
 *   (not for the pod: no rule of a case applies to it).
 * A flow sent straight to a proxy listener's own port (15001, 15006) and answered there cannot
 * tell "passed" from "REDIRECTed to where it already was": either verdict is accepted.
 */

type Fam = 'v4' | 'v6';
type Nic = 'eth0' | 'eth1' | 'not-istio-nic';

/** A third NIC, named like the interface the cases exclude with `-c not-istio-nic`. */
const NIC3 = { name: 'not-istio-nic', peerName: 'p2', pod: { v4: '10.30.0.2', v6: 'fd30::2' }, peer: { v4: '10.30.0.1', v6: 'fd30::1' } } as const;
const NICS: Readonly<Record<Nic, { pod: Readonly<Record<Fam, string>>; peer: Readonly<Record<Fam, string>> }>> = {
  eth0: { pod: ADDRS.pod, peer: ADDRS.peer },
  eth1: { pod: ADDRS.pod2, peer: ADDRS.peer2 },
  'not-istio-nic': { pod: NIC3.pod, peer: NIC3.peer },
};
const LOCAL: readonly string[] = [ADDRS.pod.v4, ADDRS.pod.v6, ADDRS.pod2.v4, ADDRS.pod2.v6, NIC3.pod.v4, NIC3.pod.v6];

/**
 * Addresses put on the peer's lo, inside and outside the cases' CIDRs: 9.9.0.0/16 (-i), 1.1.0.0/16
 * (-x), 10.0.0.0/8 (-i; the peer's own 10.10.0.1 is inside it), 2001:db8::/32 (-i and -x) and the
 * IPv6 DNS server ::127.0.0.53. The pod reaches them through its default route (eth0).
 */
const PEER_EXTRA = {
  v4: ['9.9.0.5', '9.8.0.5', '1.1.0.5', '1.2.0.5', '11.0.0.5'],
  v6: ['2001:db8::5', '2001:db9::5', '::127.0.0.53'],
} as const;
const DNS_SERVER = { v4: '127.0.0.53', v6: '::127.0.0.53' } as const;

/** Ports with a listener, in the pod (as the app) and on the peer. */
const POD_APP_PORTS = [8080, 32000, 31000, 4000, 5000, 15090, 6000];
const PEER_TCP_PORTS = [80, 8443, 32000, 31000, 53];
const PEER_UDP_PORTS = [53, 5353];

/** Short: nothing here crosses more than a veth, and every destination port has a listener. */
const FLOW_TIMEOUT_S = 0.5;
/** Flows run at once by the driver, and flows per driver run (pod.exec allows 20 s a command). */
const DRIVER_PARALLEL = 12;
const DRIVER_BATCH = 150;
/**
 * A flow that timed out is sent once more, with this bound: every destination has a listener, so a
 * timeout means the rules lost the flow or the machine was too loaded to answer within 0.5 s (seen
 * with five suites at once: 4 of 5,323 flows). A flow the rules really lose times out again.
 */
const RETRY_TIMEOUT_S = 5;

interface Sender {
  readonly uid: number;
  readonly gid: number;
}

interface Probe {
  readonly name: string;
  readonly fam: Fam;
  readonly udp: boolean;
  readonly send: ConnectSpec;
  /** Inbound: the NIC it arrives on. Outbound: the NIC the route picks (lo for a local address). */
  readonly nic: Nic | 'lo';
}

interface Row {
  readonly name: string;
  readonly trace: string;
  readonly kernel: string;
  readonly agree: boolean;
}

const groupIds = new Map<string, number>();
async function gidOf(name: string): Promise<number> {
  const known = groupIds.get(name);
  if (known !== undefined) return known;
  const r = await execa('getent', ['group', name], { reject: false, timeout: 5_000 });
  const gid = Number(r.stdout.split(':')[2]);
  if (r.exitCode !== 0 || !Number.isInteger(gid)) throw new Error(`group ${name} does not resolve (getent group: ${r.exitCode})`);
  groupIds.set(name, gid);
  return gid;
}

async function numericId(id: number | string): Promise<number> {
  return typeof id === 'number' ? id : gidOf(id);
}

/** Whether two address texts are the same address (::127.0.0.53 is ::7f00:35). */
function sameAddress(a: string | null | undefined, b: string): boolean {
  if (a === null || a === undefined) return false;
  const x = parseAddress(a);
  const y = parseAddress(b);
  // parseAddress prints canonical text: one text per address.
  return x !== null && y !== null && x.text === y.text;
}

function isV6(a: string): boolean {
  return a.includes(':');
}

/** The NIC the pod's routes pick for a destination. */
function routeOf(dst: string): Nic | 'lo' {
  if (LOCAL.includes(dst) || dst === '::1' || (!isV6(dst) && dst.startsWith('127.'))) return 'lo';
  for (const nic of ['eth1', 'not-istio-nic'] as const) {
    const prefix = isV6(dst) ? NICS[nic].peer.v6.replace(/::1$/, '::') : NICS[nic].peer.v4.replace(/\.1$/, '.');
    if (dst.startsWith(prefix)) return nic;
  }
  return 'eth0';
}

/** The source the kernel picks: loopback from loopback, a local address to itself, else the NIC's. */
function sourceOf(dst: string, fam: Fam, nic: Nic | 'lo'): string {
  if (nic !== 'lo') return NICS[nic].pod[fam];
  if (LOCAL.includes(dst)) return dst;
  return fam === 'v4' ? '127.0.0.1' : '::1';
}

/** The flow the kernel sees for a probe. */
function flowOf(p: Probe): Flow {
  const s = p.send;
  const protocol = p.udp ? 'udp' : 'tcp';
  if (s.from === 'peer') {
    const nic = p.nic === 'lo' ? 'eth0' : p.nic;
    return { direction: 'inbound', protocol, src: NICS[nic].peer[p.fam], sport: 40000, dst: s.dst, dport: s.port, inInterface: nic };
  }
  return {
    direction: 'outbound',
    protocol,
    src: s.src ?? sourceOf(s.dst, p.fam, p.nic),
    sport: 40000,
    dst: s.dst,
    dport: s.port,
    ...(p.nic === 'lo' || p.nic === 'eth0' ? {} : { outInterface: p.nic }),
    ...(s.uid === undefined ? {} : { uid: s.uid }),
    ...(s.gid === undefined ? {} : { gid: s.gid }),
    ...(s.mark === undefined ? {} : { mark: s.mark }),
  };
}

/** What the kernel did, in the trace's terms, from who answered; `flow` is flowOf(p). */
function observed(p: Probe, flow: Flow, r: Reply): string {
  if (r.error !== undefined || r.who === undefined) return `error: ${r.error ?? 'no answer'}`;
  const notes: string[] = [];
  // The traced source must be the one the kernel used.
  if (flow.direction === 'outbound' && r.clientLocal !== undefined && !sameAddress(r.clientLocal[0], flow.src)) notes.push(` (client bound ${r.clientLocal[0]}, traced ${flow.src})`);
  const proxyPort = PROXY_LISTENERS[r.who];
  if (proxyPort === undefined) {
    // pass: the listener the flow was addressed to answered, at the address it was sent to.
    const asAddressed = sameAddress(r.local?.[0], p.send.dst) && r.local?.[1] === p.send.port;
    return asAddressed ? `pass${notes.join('')}` : `delivered to ${r.who} at ${JSON.stringify(r.local)}${notes.join('')}`;
  }
  // Sent straight to a proxy listener's own port and answered there, as addressed: the kernel may
  // have passed it or NATed it to itself (a REDIRECT to the address and port it already had); both
  // look the same from the sockets, so either verdict fits (see agrees()).
  if (sameAddress(r.local?.[0], p.send.dst) && r.local?.[1] === p.send.port && p.send.port === proxyPort) return `as addressed, proxy ${proxyPort}${notes.join('')}`;
  // A proxy listener: at its own port it was NATed there; at the original port, TPROXYed.
  if (p.udp || r.localPort === proxyPort) {
    // REDIRECT keeps the original destination for the proxy (SO_ORIGINAL_DST).
    if (r.origDst !== undefined && r.origDst !== null && p.send.from === 'pod' && (!sameAddress(r.origDst[0], p.send.dst) || r.origDst[1] !== p.send.port)) {
      notes.push(` (origDst ${JSON.stringify(r.origDst)})`);
    }
    return `redirect ${proxyPort}${notes.join('')}`;
  }
  if (r.localPort !== p.send.port) notes.push(` (tproxy at port ${r.localPort})`);
  return `tproxy ${proxyPort}${notes.join('')}`;
}

/**
 * Whether the kernel's outcome is the trace's verdict. A connection refused by a destination that
 * has no listener is "pass" (it went where it was addressed); every destination of the matrix has
 * a listener, so in practice any error is a disagreement.
 */
function agrees(p: Probe, trace: string, kernel: string): boolean {
  if (trace === kernel) return true;
  const addressed = /^as addressed, proxy (\d+)$/.exec(kernel);
  if (addressed) return trace === 'pass' || trace === `redirect ${addressed[1]}` || trace === `tproxy ${addressed[1]}`;
  if (trace !== 'pass' || kernel !== 'error: refused') return false;
  const ports = p.send.from === 'peer' || routeOf(p.send.dst) === 'lo' ? [...POD_APP_PORTS, 15008, 15001, 15006] : p.udp ? PEER_UDP_PORTS : PEER_TCP_PORTS;
  return !ports.includes(p.send.port);
}

// ------------------------------------------------------------------------------------------------
// The driver: agent.py's own clients, one forked child per flow, DRIVER_PARALLEL at a time.

const DRIVER = `
import importlib.util, json, os, signal, sys
from argparse import Namespace
sys.dont_write_bytecode = True  # leave no __pycache__ beside the harness's agent.py
spec = importlib.util.spec_from_file_location("agent", sys.argv[1])
agent = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agent)
jobs = json.loads(sys.stdin.read())
par = int(sys.argv[2])
results = [None] * len(jobs)
running = {}
nxt = 0
def start(i):
    j = jobs[i]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            signal.alarm(int(j["timeout"]) + 3)
            sys.stdout = os.fdopen(w, "w")
            ns = Namespace(dst=j["dst"], port=j["port"], src=j.get("src"), uid=j.get("uid"), gid=j.get("gid"),
                           mark=j.get("mark"), timeout=j["timeout"], transparent=j.get("transparent", False))
            (agent.cmd_udp if j["udp"] else agent.cmd_connect)(ns)
            sys.stdout.flush()
        finally:
            os._exit(0)
    os.close(w)
    running[pid] = (i, r)
while nxt < len(jobs) or running:
    while nxt < len(jobs) and len(running) < par:
        start(nxt)
        nxt += 1
    pid, _ = os.wait()
    i, r = running.pop(pid)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    text = data.decode(errors="replace").strip()
    try:
        results[i] = json.loads(text.split("\\n")[-1])
    except ValueError:
        results[i] = {"error": "client printed no JSON: " + text}
print(json.dumps(results))
`;

async function runProbes(pod: Pod, probes: readonly Probe[]): Promise<Reply[]> {
  const first = await sendBatches(pod, probes, FLOW_TIMEOUT_S);
  const timedOut = probes.flatMap((p, i) => (isTimeout(first[i]) && p.send.timeout === undefined ? [i] : []));
  // Many timeouts are the rules' doing, not load: report them as they are (and within pod.exec's 20 s).
  if (timedOut.length === 0 || timedOut.length > 2 * DRIVER_PARALLEL) return first;
  const again = await sendBatches(pod, timedOut.map((i) => probes[i] as Probe), RETRY_TIMEOUT_S);
  for (const [n, i] of timedOut.entries()) first[i] = again[n] ?? { error: 'driver gave no reply' };
  return first;
}

const isTimeout = (r: Reply | undefined): boolean => r?.error === 'timeout';

async function sendBatches(pod: Pod, probes: readonly Probe[], timeout: number): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < probes.length; i += DRIVER_BATCH) {
    const jobs = probes.slice(i, i + DRIVER_BATCH).map((p) => ({ ...p.send, udp: p.udp, timeout: p.send.timeout ?? timeout }));
    const roles = new Set(jobs.map((j) => j.from));
    for (const role of roles) {
      const mine = jobs.map((j, k) => [j, k] as const).filter(([j]) => j.from === role);
      const r = await pod.exec(role, 'python3', ['-I', '-c', DRIVER, AGENT, String(DRIVER_PARALLEL)], JSON.stringify(mine.map(([j]) => j)));
      if (r.exitCode !== 0) throw new Error(`flow driver failed (${r.exitCode}): ${r.stderr}`);
      const replies = JSON.parse(r.stdout.trim().split('\n').pop() ?? '[]') as Reply[];
      for (const [n, [, k]] of mine.entries()) out[i + k] = replies[n] ?? { error: 'driver gave no reply' };
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// The topology and listeners of one case.

/** The third NIC and the peer's extra addresses (all inside the case's two namespaces). */
async function extendTopology(pod: Pod, ipv6: boolean): Promise<void> {
  const must = async (role: 'pod' | 'peer', args: string[]): Promise<void> => {
    const r = await pod.exec(role, 'ip', args);
    if (r.exitCode !== 0) throw new Error(`ip ${args.join(' ')} in ${role}: ${r.stderr}`);
  };
  await must('pod', ['link', 'add', NIC3.name, 'type', 'veth', 'peer', 'name', NIC3.peerName, 'netns', pod.ns.peer]);
  const podBatch = [`addr add ${NIC3.pod.v4}/24 dev ${NIC3.name}`, `link set ${NIC3.name} up`];
  const peerBatch = [`addr add ${NIC3.peer.v4}/24 dev ${NIC3.peerName}`, `link set ${NIC3.peerName} up`];
  for (const a of PEER_EXTRA.v4) peerBatch.push(`addr add ${a}/32 dev lo`);
  if (ipv6) {
    podBatch.push(`addr add ${NIC3.pod.v6}/64 dev ${NIC3.name} nodad`);
    peerBatch.push(`addr add ${NIC3.peer.v6}/64 dev ${NIC3.peerName} nodad`);
    for (const a of PEER_EXTRA.v6) peerBatch.push(`addr add ${a}/128 dev lo`);
  }
  const p = await pod.exec('pod', 'ip', ['-batch', '-'], `${podBatch.join('\n')}\n`);
  if (p.exitCode !== 0) throw new Error(`pod ip -batch: ${p.stderr}`);
  const q = await pod.exec('peer', 'ip', ['-batch', '-'], `${peerBatch.join('\n')}\n`);
  if (q.exitCode !== 0) throw new Error(`peer ip -batch: ${q.stderr}`);
}

async function startListeners(pod: Pod, cfg: CaptureConfig, proxy: Sender): Promise<void> {
  // Envoy under TPROXY runs as 0:1337 (Istio's injection), as trace-kernel.test.ts does.
  const listenerIds = cfg.mode === 'TPROXY' ? { uid: 0, gid: proxy.gid } : proxy;
  const specs: ListenerSpec[] = [
    ...proxyListeners(cfg.mode, listenerIds),
    // The DNS agent runs as the proxy's identity: the raw table's conntrack zones key on it.
    { ns: 'pod', kind: 'udp', port: 15053, name: 'agent-dns', ...proxy },
    { ns: 'pod', kind: 'plain', port: 15053, name: 'agent-dns-tcp', ...proxy },
    // 127.0.0.53 is the pod's own (lo holds 127/8): its resolver, when DNS is not captured.
    { ns: 'pod', kind: 'udp', port: 53, name: 'pod-dns' },
    { ns: 'pod', kind: 'plain', port: 53, name: 'pod-dns-tcp' },
    ...POD_APP_PORTS.map((port): ListenerSpec => ({ ns: 'pod', kind: 'plain', port, name: `app-${port}`, uid: APP_UID, gid: APP_GID })),
    ...PEER_TCP_PORTS.map((port): ListenerSpec => ({ ns: 'peer', kind: 'plain', port, name: `peer-${port}` })),
    ...PEER_UDP_PORTS.map((port): ListenerSpec => ({ ns: 'peer', kind: 'udp', port, name: `peer-udp-${port}` })),
  ];
  // A few at a time: each is a Python start-up, and each must be ready within the harness's bound.
  for (let i = 0; i < specs.length; i += 4) await Promise.all(specs.slice(i, i + 4).map((s) => pod.startListener(s)));
}

// ------------------------------------------------------------------------------------------------
// The flow matrix of one case.

async function sendersOf(cfg: CaptureConfig): Promise<{ proxy: Sender; senders: { label: string; ids: Sender }[] }> {
  const uids = await Promise.all(cfg.proxyUids.map(numericId));
  const gids = await Promise.all(cfg.proxyGids.map(numericId));
  const proxy = { uid: uids[0] ?? PROXY_UID, gid: gids[0] ?? PROXY_GID };
  const list: { label: string; ids: Sender }[] = [
    { label: 'app', ids: { uid: APP_UID, gid: APP_GID } },
    { label: 'proxy uid 1337', ids: { uid: PROXY_UID, gid: PROXY_GID } },
    { label: 'gid 1337, another uid', ids: { uid: 1001, gid: PROXY_GID } },
    { label: 'root, gid 1337 (Envoy under TPROXY)', ids: { uid: 0, gid: PROXY_GID } },
  ];
  for (const u of uids) if (u !== PROXY_UID) list.push({ label: `proxy uid ${u}`, ids: { uid: u, gid: APP_GID } });
  for (const g of gids) if (g !== PROXY_GID) list.push({ label: `app in proxy group ${g}`, ids: { uid: APP_UID, gid: g } });
  for (const g of cfg.ownerGroups.groups) list.push({ label: `app in owner group ${g}`, ids: { uid: APP_UID, gid: await numericId(g) } });
  const byIds = new Map<string, { label: string; ids: Sender }>();
  for (const s of list) if (!byIds.has(`${s.ids.uid}:${s.ids.gid}`)) byIds.set(`${s.ids.uid}:${s.ids.gid}`, s);
  return { proxy, senders: [...byIds.values()] };
}

function probesOf(fam: Fam, senders: readonly { label: string; ids: Sender }[], cfg: CaptureConfig, plan: Plan): Probe[] {
  const probes: Probe[] = [];
  const inbound = (nic: Nic, port: number, udp = false): void => {
    probes.push({ name: `inbound ${udp ? 'udp' : 'tcp'} via ${nic} to :${port}`, fam, udp, nic, send: { from: 'peer', dst: NICS[nic].pod[fam], port } });
  };
  // Inbound TCP: the app port, the listed inbound ports, excluded ones, the proxy's and tunnel ports.
  for (const port of [...POD_APP_PORTS, 15008, 15001, 15006]) inbound('eth0', port);
  for (const nic of ['eth1', 'not-istio-nic'] as const) for (const port of [8080, 32000, 15008, 15090]) inbound(nic, port);
  inbound('eth0', 53, true);

  // Outbound destinations, TCP and UDP.
  const tcp: [string, number][] =
    fam === 'v4'
      ? [
          ['127.0.0.1', 8080],
          [ADDRS.pod.v4, 8080],
          [ADDRS.pod.v4, 15008],
          [ADDRS.pod2.v4, 8080],
          [NIC3.pod.v4, 8080],
          ['127.1.2.3', 8080],
          ['127.1.2.4', 8080],
          [DNS_SERVER.v4, 53],
          ...PEER_TCP_PORTS.map((port): [string, number] => [ADDRS.peer.v4, port]),
          ['9.9.0.5', 80],
          ['9.9.0.5', 32000],
          ['9.8.0.5', 80],
          ['1.1.0.5', 80],
          ['1.2.0.5', 80],
          ['11.0.0.5', 80],
          [ADDRS.peer2.v4, 80],
          [NIC3.peer.v4, 80],
        ]
      : [
          ['::1', 8080],
          [ADDRS.pod.v6, 8080],
          [ADDRS.pod.v6, 15008],
          [ADDRS.pod2.v6, 8080],
          [NIC3.pod.v6, 8080],
          [DNS_SERVER.v6, 53],
          ...PEER_TCP_PORTS.map((port): [string, number] => [ADDRS.peer.v6, port]),
          ['2001:db8::5', 80],
          ['2001:db8::5', 32000],
          ['2001:db9::5', 80],
          [ADDRS.peer2.v6, 80],
          [NIC3.peer.v6, 80],
        ];
  const udp: [string, number][] = [
    [DNS_SERVER[fam], 53],
    [ADDRS.peer[fam], 53],
    [ADDRS.peer[fam], 5353],
  ];
  for (const { label, ids } of senders) {
    for (const [dst, port] of tcp) probes.push({ name: `${label} tcp to ${dst}:${port}`, fam, udp: false, nic: routeOf(dst), send: { from: 'pod', dst, port, ...ids } });
    for (const [dst, port] of udp) probes.push({ name: `${label} udp to ${dst}:${port}`, fam, udp: true, nic: routeOf(dst), send: { from: 'pod', dst, port, ...ids } });
  }
  // The proxy's passthrough source (127.0.0.6, or ::6 where the plan puts it on lo).
  const passthrough = fam === 'v4' ? '127.0.0.6' : plan.routes.some((r) => r.kind === 'loopbackAddress') ? '::6' : null;
  if (passthrough !== null) {
    for (const dst of [ADDRS.pod[fam], NIC3.pod[fam]]) {
      probes.push({ name: `proxy passthrough from ${passthrough}`, fam, udp: false, nic: 'lo', send: { from: 'pod', dst, port: 8080, uid: PROXY_UID, gid: PROXY_GID, src: passthrough } });
    }
  }
  if (cfg.mode === 'TPROXY') {
    // Envoy's original_src: IP_TRANSPARENT, the client's address, SO_MARK 1337.
    probes.push({
      name: 'original_src to the app',
      fam,
      udp: false,
      nic: 'lo',
      send: { from: 'pod', dst: ADDRS.pod[fam], port: 8080, uid: 0, gid: PROXY_GID, transparent: true, mark: cfg.tproxyMark, src: ADDRS.peer[fam] },
    });
  }
  return probes;
}

// ------------------------------------------------------------------------------------------------

const cases = conformanceCases();
const tally: { name: string; flows: number; agree: number }[] = [];
/** How many flows ended each way in the kernel, over all cases. */
const outcomes = new Map<string, number>();
const started = Date.now();

afterAll(() => {
  const total = tally.reduce((n, t) => n + t.flows, 0);
  const agree = tally.reduce((n, t) => n + t.agree, 0);
  console.log(
    [
      ...tally.map((t) => `  ${t.name}: ${t.flows} flows, ${t.agree} agree`),
      `  kernel outcomes: ${[...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`,
      `trace-cases: ${total} flows over ${tally.length} cases, ${agree} agree with the kernel (${((Date.now() - started) / 1000).toFixed(1)} s)`].join('\n'),
  );
});

describe('trace agrees with the kernel on every conformance case', () => {
  it('has the 28 cases', () => {
    expect(cases).toHaveLength(28);
  });

  it.each(cases.map((c) => [`${c.suite}/${c.name}`, c] as [string, ConformanceCase]))('%s', async (name, c) => {
    const cfg = (await configFromArgs(c.args, {}, fixedHost())).capture;
    const plan = buildPlan(cfg);
    const { proxy, senders } = await sendersOf(cfg);
    const fams: Fam[] = cfg.enableIpv6 ? ['v4', 'v6'] : ['v4'];
    const probes = fams.flatMap((f) => probesOf(f, senders, cfg, plan));
    const resolveOwner = (id: string, kind: 'uid' | 'gid'): number | undefined => (kind === 'gid' ? groupIds.get(id) : undefined);

    await withPod({ ipv6: cfg.enableIpv6, secondNic: true }, async (pod) => {
      await extendTopology(pod, cfg.enableIpv6);
      await pod.applyPayloads(await dryRunJson(c.args));
      await startListeners(pod, cfg, proxy);
      const replies = await runProbes(pod, probes);
      const rows: Row[] = probes.map((p, i) => {
        const flow = flowOf(p);
        const trace = verdictText(traceFlow(plan, flow, { localAddresses: LOCAL, resolveOwner }));
        const kernel = observed(p, flow, replies[i] ?? { error: 'no reply' });
        return {
          name: `${p.name} (${flow.direction} ${flow.protocol} ${flow.src} -> ${flow.dst}:${flow.dport}${flow.uid === undefined ? '' : ` ${flow.uid}:${flow.gid}`})`,
          trace,
          kernel,
          agree: agrees(p, trace, kernel),
        };
      });

      // The driver is the harness's client: a few flows through pod.connect / pod.udp must match it.
      const samples = [0, probes.findIndex((p) => p.send.from === 'pod' && !p.udp), probes.findIndex((p) => p.udp && p.send.from === 'pod')];
      for (const i of samples) {
        const p = probes[i];
        if (p === undefined) continue;
        const r = p.udp ? await pod.udp({ ...p.send, timeout: FLOW_TIMEOUT_S }) : await pod.connect({ ...p.send, timeout: FLOW_TIMEOUT_S });
        expect(observed(p, flowOf(p), r), `${name}: ${p.name} through the harness's own client`).toBe(rows[i]?.kernel);
      }

      tally.push({ name, flows: rows.length, agree: rows.filter((r) => r.agree).length });
      for (const r of rows) outcomes.set(r.kernel, (outcomes.get(r.kernel) ?? 0) + 1);
      if (process.env['TRACE_ROWS']) console.log(`${name}\n${rows.map((r) => `${r.agree ? 'ok  ' : 'DIFF'} ${r.name}: trace=${r.trace} kernel=${r.kernel}`).join('\n')}`);
      const differ = rows.filter((r) => !r.agree);
      expect(differ.map((r) => `DIFF ${r.name}: trace=${r.trace} kernel=${r.kernel}`)).toEqual([]);
    });
  });
});
