import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';

/**
 * A real-traffic harness: a "pod" network namespace wired by veth pairs to a "peer" namespace,
 * with python socket roles (agent.py) started inside either, so tests can check who answers a
 * connection once a capture plan is applied.
 *
 *   peer ns                              pod ns
 *   p0  10.10.0.1/24  fd10::1/64  <──>  eth0 10.10.0.2/24 fd10::2/64   (default routes via p0)
 *   p1  10.20.0.1/24  fd20::1/64  <──>  eth1 10.20.0.2/24 fd20::2/64   (secondNic only)
 *
 * Nothing is created or sent outside these two namespaces; `close()` kills exactly the processes
 * this pod started and deletes both namespaces.
 */

export const AGENT = fileURLToPath(new URL('./agent.py', import.meta.url));

/** Addresses of the topology. `pod`/`peer` are on eth0's veth, `pod2`/`peer2` on eth1's. */
export const ADDRS = {
  pod: { v4: '10.10.0.2', v6: 'fd10::2' },
  peer: { v4: '10.10.0.1', v6: 'fd10::1' },
  pod2: { v4: '10.20.0.2', v6: 'fd20::2' },
  peer2: { v4: '10.20.0.1', v6: 'fd20::1' },
} as const;

export const PROXY_UID = 1337;
export const PROXY_GID = 1337;
export const APP_UID = 1000;
export const APP_GID = 1000;

/** Bounds on every wait. */
const READY_TIMEOUT_MS = 3_000;
const CLIENT_TIMEOUT_S = 2;
const COMMAND_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 2_000;

const LISTENER_OPTIONS = { reject: false, buffer: false, stdin: 'ignore' } as const;
type Child = ResultPromise<typeof LISTENER_OPTIONS>;

export type NsRole = 'pod' | 'peer';
export type ListenerKind = 'redirect' | 'tproxy' | 'plain' | 'udp';
export type Family = 4 | 6 | 46;
export type Backend = 'nft' | 'legacy';

export interface PodOptions {
  /** Give both ends IPv6 addresses and default routes (default true). */
  readonly ipv6?: boolean;
  /** Add eth1 (10.20.0.2/fd20::2) wired to the peer's p1 (default false). */
  readonly secondNic?: boolean;
}

export interface Payloads {
  readonly iptablesRestore: string | null;
  readonly ip6tablesRestore: string | null;
  readonly ipCommands: readonly (readonly string[])[];
}

export interface ListenerSpec {
  readonly ns: NsRole;
  readonly kind: ListenerKind;
  readonly port: number;
  /** 4, 6 or 46 (both, one process; the default). */
  readonly family?: Family;
  readonly name: string;
  /** Run as this uid/gid (sockets are made after the switch, so owner matches see them). */
  readonly uid?: number;
  readonly gid?: number;
}

export interface Listener {
  readonly spec: ListenerSpec;
  readonly pid: number;
  stop(): Promise<void>;
}

export interface ConnectSpec {
  readonly from: NsRole;
  readonly dst: string;
  readonly port: number;
  readonly uid?: number;
  readonly gid?: number;
  /** Bind this source address first (a foreign one needs `transparent`). */
  readonly src?: string;
  /** SO_MARK. */
  readonly mark?: number;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT, as Envoy's original_src sets. */
  readonly transparent?: boolean;
  /** Seconds, default 2. */
  readonly timeout?: number;
}

export type UdpSpec = Omit<ConnectSpec, 'transparent'>;

export type SockAddr = [address: string, port: number];

/** What a server answered (plus `clientLocal`, the client's own address), or `error`. */
export interface Reply {
  readonly who?: string;
  readonly localPort?: number;
  readonly local?: SockAddr;
  readonly peer?: SockAddr;
  /** Listener kind "redirect" only: SO_ORIGINAL_DST, null when the socket has no conntrack entry. */
  readonly origDst?: SockAddr | null;
  readonly clientLocal?: SockAddr;
  /** The ids the client ran as. */
  readonly clientUid?: number;
  readonly clientGid?: number;
  /** UDP only: the address the reply came from. */
  readonly from?: SockAddr;
  readonly error?: string;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export interface Pod {
  /** Namespace names, e.g. { pod: 'iit1234p0', peer: 'iit1234q0' }. */
  readonly ns: Readonly<Record<NsRole, string>>;
  readonly options: Required<PodOptions>;
  /** Load the payloads with `iptables-restore --noflush` / `ip6tables-restore --noflush` and run the ip commands, inside the pod namespace. */
  applyPayloads(payloads: Payloads, backend?: Backend): Promise<void>;
  startListener(spec: ListenerSpec): Promise<Listener>;
  connect(spec: ConnectSpec): Promise<Reply>;
  udp(spec: UdpSpec): Promise<Reply>;
  /** Run a command inside one of the namespaces (never throws on a non-zero exit). */
  exec(ns: NsRole, cmd: string, args: readonly string[], input?: string): Promise<ExecResult>;
  /** Kill every process this pod started and delete its namespaces; safe to call twice. */
  close(): Promise<void>;
}

let counter = 0;

let pythonPath: Promise<string> | undefined;
/** The interpreter itself, resolved once: a version manager's `python3` shim costs ~100 ms a call. */
function python(): Promise<string> {
  pythonPath ??= execa('python3', ['-c', 'import sys; print(sys.executable)']).then((r) => r.stdout.trim());
  return pythonPath;
}

const RESTORE: Record<Backend, Record<'ipv4' | 'ipv6', string>> = {
  nft: { ipv4: 'iptables-nft-restore', ipv6: 'ip6tables-nft-restore' },
  legacy: { ipv4: 'iptables-legacy-restore', ipv6: 'ip6tables-legacy-restore' },
};

async function run(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  const r = await execa(cmd, args, {
    reject: false,
    timeout: COMMAND_TIMEOUT_MS,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 };
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  const r = await run(cmd, args, input);
  if (r.exitCode !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}${input === undefined ? '' : `\n--- input ---\n${input}`}`);
  }
  return r;
}

function parseReply(stdout: string, stderr: string): Reply {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Reply;
  } catch {
    return { error: `agent printed no JSON: stdout=${JSON.stringify(stdout)} stderr=${JSON.stringify(stderr)}` };
  }
}

function clientArgs(spec: UdpSpec & { transparent?: boolean }): string[] {
  const a = ['--dst', spec.dst, '--port', String(spec.port), '--timeout', String(spec.timeout ?? CLIENT_TIMEOUT_S)];
  if (spec.src !== undefined) a.push('--src', spec.src);
  if (spec.uid !== undefined) a.push('--uid', String(spec.uid));
  if (spec.gid !== undefined) a.push('--gid', String(spec.gid));
  if (spec.mark !== undefined) a.push('--mark', String(spec.mark));
  if (spec.transparent === true) a.push('--transparent');
  return a;
}

export async function createPod(options: PodOptions = {}): Promise<Pod> {
  const opts: Required<PodOptions> = { ipv6: options.ipv6 ?? true, secondNic: options.secondNic ?? false };
  const n = counter++;
  const ns: Record<NsRole, string> = { pod: `iit${process.pid}p${n}`, peer: `iit${process.pid}q${n}` };
  const created: string[] = [];
  const children = new Set<Child>();
  let closed = false;

  const exec = (role: NsRole, cmd: string, args: readonly string[], input?: string): Promise<ExecResult> =>
    run('ip', ['netns', 'exec', ns[role], cmd, ...args], input);

  async function stopChild(child: Child): Promise<void> {
    if (!children.has(child)) return;
    children.delete(child);
    // `ip netns exec` execs the agent, so this pid is the python process itself.
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      await child;
    } catch {
      // killed: expected
    } finally {
      clearTimeout(timer);
    }
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    await Promise.all([...children].map((c) => stopChild(c)));
    for (const name of created) await run('ip', ['netns', 'del', name]);
  }

  const pod: Pod = {
    ns,
    options: opts,

    async applyPayloads(payloads, backend = 'nft') {
      if (payloads.iptablesRestore !== null) await must('ip', ['netns', 'exec', ns.pod, RESTORE[backend].ipv4, '--noflush'], payloads.iptablesRestore);
      if (payloads.ip6tablesRestore !== null) await must('ip', ['netns', 'exec', ns.pod, RESTORE[backend].ipv6, '--noflush'], payloads.ip6tablesRestore);
      for (const argv of payloads.ipCommands) {
        const [cmd, ...args] = argv;
        if (cmd !== 'ip') throw new Error(`unexpected routing command: ${argv.join(' ')}`);
        await must('ip', ['-n', ns.pod, ...args]);
      }
    },

    async startListener(spec) {
      const args = [AGENT, `listen-${spec.kind}`, '--port', String(spec.port), '--family', String(spec.family ?? 46), '--name', spec.name];
      if (spec.uid !== undefined) args.push('--uid', String(spec.uid));
      if (spec.gid !== undefined) args.push('--gid', String(spec.gid));
      const child = execa('ip', ['netns', 'exec', ns[spec.ns], await python(), '-I', '-u', ...args], LISTENER_OPTIONS);
      children.add(child);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => void (stderr += d.toString()));
      const ready = await new Promise<boolean>((resolve) => {
        let stdout = '';
        const timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
        child.stdout?.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.split('\n').includes('ready')) {
            clearTimeout(timer);
            resolve(true);
          }
        });
        void child.then(() => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (!ready) {
        await stopChild(child);
        throw new Error(`listener ${spec.name} (${spec.kind} :${spec.port} in ${spec.ns}) not ready within ${READY_TIMEOUT_MS} ms: ${stderr}`);
      }
      return { spec, pid: child.pid ?? -1, stop: () => stopChild(child) };
    },

    async connect(spec) {
      const r = await exec(spec.from, await python(), ['-I', AGENT, 'connect', ...clientArgs(spec)]);
      return parseReply(r.stdout, r.stderr);
    },

    async udp(spec) {
      const r = await exec(spec.from, await python(), ['-I', AGENT, 'udp', ...clientArgs(spec)]);
      return parseReply(r.stdout, r.stderr);
    },

    exec,
    close,
  };

  try {
    for (const name of [ns.pod, ns.peer]) {
      await must('ip', ['netns', 'add', name]);
      created.push(name);
      // Before any interface exists, so eth0/eth1/p0/p1 inherit "default": no IPv6 duplicate
      // address detection (addresses usable at once), IPv6 on (an IPv4-only pod just has no
      // global IPv6 address, as in a real cluster).
      await must('ip', ['netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0']);
    }
    const nics: { pod: string; peer: string; podAddr: { v4: string; v6: string }; peerAddr: { v4: string; v6: string } }[] = [
      { pod: 'eth0', peer: 'p0', podAddr: ADDRS.pod, peerAddr: ADDRS.peer },
    ];
    if (opts.secondNic) nics.push({ pod: 'eth1', peer: 'p1', podAddr: ADDRS.pod2, peerAddr: ADDRS.peer2 });

    const podBatch = ['link set lo up'];
    const peerBatch = ['link set lo up'];
    for (const nic of nics) {
      // Created inside the pod namespace with its other end straight in the peer's: nothing in the host's.
      await must('ip', ['-n', ns.pod, 'link', 'add', nic.pod, 'type', 'veth', 'peer', 'name', nic.peer, 'netns', ns.peer]);
      podBatch.push(`addr add ${nic.podAddr.v4}/24 dev ${nic.pod}`, `link set ${nic.pod} up`);
      peerBatch.push(`addr add ${nic.peerAddr.v4}/24 dev ${nic.peer}`, `link set ${nic.peer} up`);
      if (opts.ipv6) {
        podBatch.push(`addr add ${nic.podAddr.v6}/64 dev ${nic.pod} nodad`);
        peerBatch.push(`addr add ${nic.peerAddr.v6}/64 dev ${nic.peer} nodad`);
      }
    }
    podBatch.push(`route add default via ${ADDRS.peer.v4} dev eth0`);
    if (opts.ipv6) podBatch.push(`route add default via ${ADDRS.peer.v6} dev eth0`);
    await must('ip', ['-n', ns.pod, '-batch', '-'], `${podBatch.join('\n')}\n`);
    await must('ip', ['-n', ns.peer, '-batch', '-'], `${peerBatch.join('\n')}\n`);
  } catch (e) {
    await close();
    throw e;
  }
  return pod;
}

/** Create a pod, run `fn`, and close the pod whatever happens. */
export async function withPod<T>(options: PodOptions, fn: (pod: Pod) => Promise<T>): Promise<T> {
  const pod = await createPod(options);
  try {
    return await fn(pod);
  } finally {
    await pod.close();
  }
}
