import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { AGENT_SOCKET, encodeLine, parseReply, type AgentReply, type PodRequest } from '../../src/cni/protocol.js';
import { ROOT } from './cli.js';

/** The plugin as a runtime finds it, and the agent as its package bin runs it (both from dist/). */
export const PLUGIN = join(ROOT, 'dist/cni/istio-cni');
export const AGENT_BIN = join(ROOT, 'bin/istio-cni-agent.js');
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface PluginRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed (undefined when it is empty or not JSON). */
  readonly json: Record<string, unknown> | undefined;
}

export interface PluginInvocation {
  readonly command: string;
  readonly netns?: string | undefined;
  /** CNI_ARGS; default: a Kubernetes runtime's for pod `pod` in `namespace`. */
  readonly args?: string | undefined;
  readonly pod?: { namespace: string; name: string; uid?: string } | undefined;
  readonly conf: string | Record<string, unknown>;
  /** Variables to leave out (tests of a missing one). */
  readonly omit?: readonly string[];
  readonly timeoutMs?: number;
  /** The plugin executable; default: this checkout's (PLUGIN). */
  readonly plugin?: string;
}

/** Run the plugin as a runtime does: CNI_* in a clean environment, the conf on stdin. */
export async function runPlugin(i: PluginInvocation): Promise<PluginRun> {
  const args = i.args ?? (i.pod === undefined ? '' : `IgnoreUnknown=1;K8S_POD_NAMESPACE=${i.pod.namespace};K8S_POD_NAME=${i.pod.name};K8S_POD_INFRA_CONTAINER_ID=sandbox${i.pod.uid === undefined ? '' : `;K8S_POD_UID=${i.pod.uid}`}`);
  const env: Record<string, string> = { PATH, CNI_COMMAND: i.command, CNI_CONTAINERID: 'c0ffee', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', CNI_ARGS: args };
  if (i.netns !== undefined) env['CNI_NETNS'] = i.netns;
  for (const k of i.omit ?? []) delete env[k];
  const r = await execa(i.plugin ?? PLUGIN, [], {
    input: typeof i.conf === 'string' ? i.conf : JSON.stringify(i.conf),
    env,
    extendEnv: false,
    reject: false,
    timeout: i.timeoutMs ?? 60_000,
  });
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

export interface Agent {
  readonly runDir: string;
  readonly socket: string;
  readonly process: ChildProcess;
  /** Everything it logged so far. */
  log(): string;
  /** SIGTERM, then SIGKILL if it has not ended within 5 s; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/** Wait for `ok` (polled every 25 ms), at most `ms`; throws naming `what`. */
export async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A node's CNI directories in a temporary directory: net.d (configurations) and bin (plugins). */
export function nodeDirs(tag: string): { path: string; net: string; bin: string; remove(): void } {
  const d = tempDir(tag);
  const net = join(d.path, 'net.d');
  const bin = join(d.path, 'bin');
  mkdirSync(net);
  mkdirSync(bin);
  return { ...d, net, bin };
}

/** A temporary directory removed by `remove()`. */
export function tempDir(tag: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `iit-h6-${tag}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Start istio-cni-agent (node bin/istio-cni-agent.js ...args); resolves once it says it answers on its socket (10 s at most). */
export async function startAgent(runDir: string, args: readonly string[]): Promise<Agent> {
  const child = spawn(process.execPath, [AGENT_BIN, '--run-dir', runDir, '--ready-address', 'none', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (d: Buffer) => void (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => void (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const socket = join(runDir, AGENT_SOCKET);
  const until = Date.now() + 10_000;
  while (!log.includes('answering the plugin on') || !existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`istio-cni-agent did not start (exit ${child.exitCode}):\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    runDir,
    socket,
    process: child,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Ask the agent as the plugin does (one line each way), from Node; bounded by `timeoutMs`. */
export function askAgent(socket: string, request: PodRequest, timeoutMs = 30_000): Promise<AgentReply> {
  return new Promise((resolve, reject) => {
    const c = createConnection(socket);
    let data = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(encodeLine(request)));
    c.on('data', (d: string) => {
      data += d;
      const end = data.indexOf('\n');
      if (end >= 0) {
        clearTimeout(timer);
        c.destroy();
        try {
          resolve(parseReply(data.slice(0, end)));
        } catch (err) {
          reject(err as Error);
        }
      }
    });
    c.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A pod request for the protocol. */
export const podRequest = (namespace: string, name: string, uid = ''): PodRequest => ({ v: 1, op: 'pod', namespace, name, uid });

export interface CniCase {
  readonly name: string;
  readonly pod: Record<string, unknown> & { metadata: { name: string; namespace: string } };
  /** Istio's IPv4 rules for it (restore text). */
  readonly expected: string;
}

/** Istio's istio-cni dry-run cases (golden/istio-cni) and the conf its test gives the plugin. */
export function cniCases(): { conf: Record<string, unknown>; cases: CniCase[] } {
  const dir = join(ROOT, 'golden/istio-cni');
  const data = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { conf: Record<string, unknown>; cases: { name: string; pod: CniCase['pod']; expected: string }[] };
  return { conf: data.conf, cases: data.cases.map((c) => ({ name: c.name, pod: c.pod, expected: readFileSync(join(dir, 'expected', c.expected), 'utf8') })) };
}

/** Write `objects` as a --pods file (a List) in `dir`; returns its path. */
export function podsFile(dir: string, objects: readonly unknown[], name = 'pods.json'): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  return file;
}

/** A namespace's eth0 as a pod's (a veth end, 10.0.0.2/24 unless said otherwise), up. */
export async function podInterface(run: (cmd: string, args: readonly string[]) => Promise<{ exitCode: number; stderr: string }>, address = '10.0.0.2/24'): Promise<void> {
  for (const argv of [
    ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0'],
    ['addr', 'add', address, 'dev', 'eth0'],
    ['link', 'set', 'eth0', 'up'],
    ['link', 'set', 'peer0', 'up'],
  ]) {
    const r = await run('ip', argv);
    if (r.exitCode !== 0) throw new Error(`ip ${argv.join(' ')}: ${r.stderr}`);
  }
}

const PODMAN_LOCK = '/tmp/podman.lock';

/** Whether a process this one descends from holds the lock file (a run started as `flock /tmp/podman.lock npx vitest ...`). */
function lockHeldByAncestor(lock: string): boolean {
  if (!existsSync(lock)) return false;
  const ino = String(statSync(lock).ino);
  const holders = readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => !l.includes('->'))
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === 'FLOCK' && f[5]?.split(':')[2] === ino)
    .map((f) => Number(f[4]));
  for (let pid = process.pid; pid > 1; ) {
    if (holders.includes(pid)) return true;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return false;
}

/**
 * Hold /tmp/podman.lock (other suites use podman's store too) until the returned function is
 * called: held already by the run (an ancestor), or by a `flock` started here that prints once it
 * has the lock and keeps it until its stdin closes. Waits as long as another holder keeps it.
 */
export async function holdPodmanLock(): Promise<() => void> {
  if (lockHeldByAncestor(PODMAN_LOCK)) return () => {};
  const holder = spawn('flock', [PODMAN_LOCK, 'sh', '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    holder.stdout?.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`flock ${PODMAN_LOCK} exited ${code}`)));
  });
  return () => void holder.stdin?.end();
}
