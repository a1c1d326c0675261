import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { factsFromPod, LABEL, type PodFacts } from '../cni/pod.js';
import { PROTOCOL_VERSION, type AgentReply, type PodRequest } from '../cni/protocol.js';

/*
 * What the node agent knows about pods: a store of each pod's facts (only what the plugin reads,
 * a few hundred bytes per pod), filled from a file (--pods) or from the Kubernetes API
 * (kube.ts), and the namespaces' ambient enrolment.
 */

export class PodStore {
  private readonly pods = new Map<string, PodFacts>();
  private readonly modes = new Map<string, string>();

  get size(): number {
    return this.pods.size;
  }

  /** The pod's facts, with its namespace's dataplane mode when known. */
  get(namespace: string, name: string): PodFacts | undefined {
    const f = this.pods.get(`${namespace}/${name}`);
    if (f === undefined) return undefined;
    const mode = this.modes.get(namespace);
    return mode === undefined ? f : { ...f, namespaceDataplaneMode: mode };
  }

  set(f: PodFacts): void {
    this.pods.set(`${f.namespace}/${f.name}`, f);
  }

  delete(namespace: string, name: string): void {
    this.pods.delete(`${namespace}/${name}`);
  }

  /** Replace every pod (a fresh list). */
  reset(all: readonly PodFacts[]): void {
    this.pods.clear();
    for (const f of all) this.set(f);
  }

  setNamespace(name: string, labels: Readonly<Record<string, string>> | null | undefined): void {
    const mode = labels?.[LABEL.dataplaneMode];
    if (mode === undefined) this.modes.delete(name);
    else this.modes.set(name, mode);
  }

  resetNamespaces(all: readonly { name: string; labels: Readonly<Record<string, string>> | null | undefined }[]): void {
    this.modes.clear();
    for (const n of all) this.setNamespace(n.name, n.labels);
  }
}

/** Where the agent learns about pods. */
export interface PodSource {
  /** The answer for a pod: from what is known, else from the source itself (bounded). */
  lookup(request: PodRequest): Promise<AgentReply>;
  /** Whether the source has delivered its first complete view. */
  readonly synced: boolean;
  /** How many pods are known. */
  readonly size: number;
  stop(): void;
}

/** A reply for a pod the store has with the uid asked for (any when the request has none). */
export function known(store: PodStore, r: PodRequest): AgentReply | undefined {
  const f = store.get(r.namespace, r.name);
  return f !== undefined && (r.uid === '' || f.uid === '' || f.uid === r.uid) ? { v: PROTOCOL_VERSION, pod: f } : undefined;
}

/**
 * A file's documents: JSON as one document (JSON.parse: a YAML parser keeps a syntax tree of the
 * whole text, ~70 times its size for a List of a thousand pods), YAML as one or more.
 */
function documents(text: string, file: string): unknown[] {
  if (/^\s*[[{]/.test(text)) {
    try {
      return [JSON.parse(text)];
    } catch {
      // Not JSON after all (a YAML flow mapping): read as YAML.
    }
  }
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${file}: document ${i + 1} is not valid YAML or JSON: ${doc.errors[0]?.message ?? ''}`);
    return doc.toJS() as unknown;
  });
}

/** Objects of a file: JSON or YAML, one or more documents, each a Pod, a Namespace, or a List of them. */
export function objectsOf(text: string, file: string): unknown[] {
  const out: unknown[] = [];
  for (const [i, value] of documents(text, file).entries()) {
    if (value === null || value === undefined) continue;
    const kind = (value as { kind?: unknown }).kind;
    if (typeof kind === 'string' && kind.endsWith('List')) {
      const items = (value as { items?: unknown }).items;
      if (!Array.isArray(items)) throw new Error(`${file}: document ${i + 1} is a ${kind} without items`);
      out.push(...items);
    } else {
      out.push(value);
    }
  }
  return out;
}

/** Pods and namespaces from a file's objects; anything else is an error naming it. */
export function loadObjects(objects: readonly unknown[], file: string): { pods: PodFacts[]; namespaces: { name: string; labels: Record<string, string> | undefined }[] } {
  const pods: PodFacts[] = [];
  const namespaces: { name: string; labels: Record<string, string> | undefined }[] = [];
  for (const [i, o] of objects.entries()) {
    const kind = (o as { kind?: unknown } | null)?.kind;
    if (kind === 'Namespace') {
      const meta = (o as { metadata?: { name?: unknown; labels?: Record<string, string> } }).metadata;
      if (typeof meta?.name !== 'string') throw new Error(`${file}: object ${i + 1} is a Namespace without a name`);
      namespaces.push({ name: meta.name, labels: meta.labels });
    } else if (kind === 'Pod' || kind === undefined) {
      try {
        pods.push(factsFromPod(o));
      } catch (err) {
        throw new Error(`${file}: object ${i + 1} is not a pod: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      }
    } else {
      throw new Error(`${file}: object ${i + 1} is a ${String(kind)}: expected a Pod, a Namespace or a List of them`);
    }
  }
  return { pods, namespaces };
}

/**
 * Pods from a file (--pods): read at start, and again when a pod is asked for that it does not
 * have (so a test or a runtime without Kubernetes can add pods to the file as it goes).
 */
export function filePods(file: string, store: PodStore, log: (msg: string) => void): PodSource {
  const load = (): void => {
    const { pods, namespaces } = loadObjects(objectsOf(readFileSync(file, 'utf8'), file), file);
    store.reset(pods);
    store.resetNamespaces(namespaces);
    log(`loaded ${pods.length} pod(s) from ${file}`);
  };
  load();
  return {
    synced: true,
    get size() {
      return store.size;
    },
    async lookup(r) {
      const hit = known(store, r);
      if (hit !== undefined) return hit;
      try {
        load();
      } catch (err) {
        return { v: PROTOCOL_VERSION, error: err instanceof Error ? err.message : String(err) };
      }
      return known(store, r) ?? { v: PROTOCOL_VERSION, missing: `no pod ${r.namespace}/${r.name}${r.uid === '' ? '' : ` with uid ${r.uid}`} in ${file}` };
    },
    stop() {},
  };
}
