import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseAddress } from '../config/net.js';

/*
 * Repair, as Istio's repair controller (cni/pkg/repair): a pod whose validation init container
 * last exited with the validation failure code (126: its rules are missing, e.g. it started before
 * the plugin was installed) is re-applied from outside (its namespace found by its address, the
 * plugin run for it as the runtime would), deleted (kept only if still the same pod), or labelled.
 * Each pod is repaired once per uid; a failed repair is tried again, up to MAX_ATTEMPTS times.
 */

export type RepairMode = 'repair' | 'delete' | 'label';

export interface RepairFilter {
  /** Only pods with this annotation ('' : any pod). */
  readonly sidecarAnnotation: string;
  /** The validation container's name ('' : any init container). */
  readonly initContainerName: string;
  /** Its exit code that means "rules missing" (0: any non-zero). */
  readonly exitCode: number;
  /** Its termination message, when one is required ('' : any). */
  readonly terminationMessage: string;
}

interface Terminated {
  exitCode?: number;
  reason?: string;
  message?: string;
}
interface RepairPod {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; annotations?: Record<string, string> | null; labels?: Record<string, string> | null };
  status?: {
    podIP?: string;
    podIPs?: { ip?: string }[] | null;
    initContainerStatuses?: { name?: string; state?: { terminated?: Terminated | null } | null; lastState?: { terminated?: Terminated | null } | null }[] | null;
  } | null;
}

/** Istio's matchesFilter: a validation container that is not now successful and last terminated as the filter says. */
export function needsRepair(pod: unknown, f: RepairFilter): boolean {
  const p = pod as RepairPod;
  if (f.sidecarAnnotation !== '' && p.metadata?.annotations?.[f.sidecarAnnotation] === undefined) return false;
  for (const c of p.status?.initContainerStatuses ?? []) {
    if (f.initContainerName !== '' && c.name !== f.initContainerName) continue;
    const now = c.state?.terminated;
    // Exited successfully now: never broken, whatever happened before.
    if (now && (now.reason === 'Completed' || now.exitCode === 0)) continue;
    const last = c.lastState?.terminated;
    if (!last) continue;
    const message = f.terminationMessage.trim() === '' || f.terminationMessage.trim() === (last.message ?? '').trim();
    const code = f.exitCode === 0 || f.exitCode === last.exitCode;
    if (message && code) return true;
  }
  return false;
}

/** The address of a pod (its first pod IP). */
export function podAddress(pod: unknown): string | undefined {
  const s = (pod as RepairPod).status;
  return s?.podIP || s?.podIPs?.[0]?.ip || undefined;
}

/** Whether a /proc/<pid>/net/fib_trie (or if_inet6) text shows `address` as a local address of that namespace. */
export function holdsAddress(fibTrie: string, ifInet6: string, address: string): boolean {
  const a = parseAddress(address);
  if (a === null) return false;
  if (a.family === 'ipv4') {
    const lines = fibTrie.split('\n');
    return lines.some((line, i) => line.trim() === `|-- ${address}` && /\/32 host LOCAL/.test(lines[i + 1] ?? ''));
  }
  const hex = a.parts.map((p) => p.toString(16).padStart(4, '0')).join('');
  return ifInet6.split('\n').some((line) => line.trim().split(/\s+/)[0] === hex);
}

/**
 * The network namespace holding `address`, as a path under `proc`: of the processes whose
 * namespace has it, the oldest (the pod's sandbox, which outlives its containers), as Istio does.
 * Read from /proc/<pid>/net, no process started.
 */
export function findNamespace(proc: string, address: string): string | undefined {
  let best: { path: string; start: number } | undefined;
  const seen = new Map<number, boolean>();
  for (const entry of readdirSync(proc)) {
    if (!/^[1-9]\d*$/.test(entry)) continue;
    const dir = join(proc, entry);
    try {
      const ino = statSync(join(dir, 'ns', 'net')).ino;
      let has = seen.get(ino);
      if (has === undefined) {
        const read = (f: string) => {
          try {
            return readFileSync(join(dir, 'net', f), 'utf8');
          } catch {
            return '';
          }
        };
        has = holdsAddress(read('fib_trie'), read('if_inet6'), address);
        seen.set(ino, has);
      }
      if (!has) continue;
      // Field 22 of stat: the start time; the command (field 2) may hold spaces, so count after its ')'.
      const stat = readFileSync(join(dir, 'stat'), 'utf8');
      const start = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      if (best === undefined || start < best.start) best = { path: join(dir, 'ns', 'net'), start };
    } catch {
      // A process that ended while we looked.
    }
  }
  return best?.path;
}

export interface RepairActions {
  /** Re-apply the pod's rules in the namespace at `netns` (the plugin's ADD). */
  reapply(pod: { namespace: string; name: string; uid: string }, netns: string): Promise<void>;
  deletePod(namespace: string, name: string, uid: string, resourceVersion: string): Promise<void>;
  labelPod(namespace: string, name: string, key: string, value: string): Promise<void>;
}

export interface RepairOptions {
  readonly mode: RepairMode;
  readonly filter: RepairFilter;
  readonly labelKey: string;
  readonly labelValue: string;
  /** Where the host's /proc is (mounted into the agent's container). */
  readonly proc: string;
}

const MAX_ATTEMPTS = 5;

/** Takes every pod the agent sees; repairs those that need it, one at a time. */
export function repairer(o: RepairOptions, act: RepairActions, log: (msg: string) => void): { onPod(pod: unknown): void; idle(): Promise<void> } {
  const repaired = new Map<string, string>();
  const attempts = new Map<string, number>();
  let queue: Promise<void> = Promise.resolve();
  const repairOne = async (pod: RepairPod) => {
    const m = pod.metadata ?? {};
    const key = `${m.namespace ?? ''}/${m.name ?? ''}`;
    const uid = m.uid ?? '';
    if (repaired.get(key) === uid) return;
    const tries = (attempts.get(`${key}/${uid}`) ?? 0) + 1;
    if (tries > MAX_ATTEMPTS) return;
    attempts.set(`${key}/${uid}`, tries);
    try {
      if (o.mode === 'label') {
        if (m.labels?.[o.labelKey] !== undefined) return;
        await act.labelPod(m.namespace ?? '', m.name ?? '', o.labelKey, o.labelValue);
        log(`pod ${key} detected as broken (validation exited ${o.filter.exitCode}): labelled ${o.labelKey}=${o.labelValue}`);
      } else if (o.mode === 'delete') {
        await act.deletePod(m.namespace ?? '', m.name ?? '', uid, m.resourceVersion ?? '');
        log(`pod ${key} detected as broken (validation exited ${o.filter.exitCode}): deleted`);
      } else {
        const address = podAddress(pod);
        if (address === undefined) throw new Error('it has no pod IP yet');
        const netns = findNamespace(o.proc, address);
        if (netns === undefined) throw new Error(`no network namespace under ${o.proc} holds its address ${address}`);
        await act.reapply({ namespace: m.namespace ?? '', name: m.name ?? '', uid }, netns);
        log(`pod ${key} detected as broken (validation exited ${o.filter.exitCode}): rules applied in ${netns}`);
      }
      repaired.set(key, uid);
    } catch (err) {
      log(`repairing pod ${key} failed (attempt ${tries} of ${MAX_ATTEMPTS}): ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return {
    onPod(pod) {
      if (!needsRepair(pod, o.filter)) return;
      queue = queue.then(() => repairOne(pod as RepairPod));
    },
    idle: () => queue,
  };
}

/** Re-apply by running the plugin's ADD for the pod, as a runtime would (same code, same checks). */
export function pluginReapply(plugin: string, conf: Record<string, unknown>, timeoutMs: number): RepairActions['reapply'] {
  return async (pod, netns) => {
    const r = await execa(plugin, [], {
      input: JSON.stringify({ cniVersion: '1.0.0', name: 'istio-cni-repair', ...conf }),
      env: {
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: `repair-${pod.uid || pod.name}`,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/opt/cni/bin',
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
        PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      },
      extendEnv: false,
      reject: false,
      timeout: timeoutMs,
    });
    if (r.exitCode !== 0) {
      let msg = r.stdout;
      try {
        const e = JSON.parse(r.stdout) as { msg?: string; details?: string };
        msg = `${e.msg ?? ''}${e.details ? ` (${e.details.split('\n')[0]})` : ''}`;
      } catch {
        // not the plugin's error object
      }
      throw new Error(`the plugin failed (exit ${r.exitCode ?? r.signal}): ${msg || r.stderr.split('\n').slice(-2).join(' ')}`);
    }
  };
}
