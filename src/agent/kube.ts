import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { factsFromPod, type PodFacts } from '../cni/pod.js';
import { PROTOCOL_VERSION, type AgentReply } from '../cni/protocol.js';
import type { Logger } from '../log.js';
import { known, type PodSource, type PodStore } from './pods.js';

/*
 * Pods from the Kubernetes API through the official client (@kubernetes/client-node): a list and
 * a watch of this node's pods (fieldSelector spec.nodeName), resumed from the last resourceVersion
 * and listed afresh when the API says it is too old (410 Gone), plus the namespaces' labels (ambient
 * enrolment); a GET for a pod the watch has not delivered yet, retried a bounded number of times.
 * The API failing (down, 401 with an expired token) never stops the agent: it keeps serving what
 * it knows and retrying, and a pod it cannot learn about gets an error the plugin reports.
 */

export interface KubeOptions {
  /** A kubeconfig file; absent: the in-cluster service account. */
  readonly kubeconfig?: string | undefined;
  readonly nodeName: string;
  /** Attempts of the GET for a pod not known yet, and the pause between them. */
  readonly getAttempts: number;
  readonly getRetryMs: number;
  /** Bound on each request of the GET. */
  readonly requestTimeoutMs: number;
  /** Longest pause between attempts to list and watch again after a failure. */
  readonly maxBackoffMs: number;
}

export interface KubeClient {
  readonly api: CoreV1Api;
  readonly config: KubeConfig;
}

export function kubeClient(kubeconfig: string | undefined): KubeClient {
  const config = new KubeConfig();
  if (kubeconfig === undefined) config.loadFromCluster();
  else config.loadFromFile(kubeconfig);
  return { api: config.makeApiClient(CoreV1Api), config };
}

/** The HTTP status of a client error (ApiException's code, Watch's statusCode), or undefined. */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** A client error in one line: the status and the API's message when it sent a Status object. */
export function describeError(err: unknown): string {
  const status = statusOf(err);
  const body = (err as { body?: unknown } | null)?.body;
  let message: string | undefined;
  try {
    const b = typeof body === 'string' ? (JSON.parse(body) as { message?: unknown }) : (body as { message?: unknown } | undefined);
    if (typeof b?.message === 'string') message = b.message;
  } catch {
    // not a Status object
  }
  // ApiException's own text: "HTTP-Code: 401\nMessage: Unauthorized\nBody: ..." (no body kept for a 401).
  const raw = err instanceof Error ? err.message : String(err);
  const text = message ?? raw.match(/^Message: (.*)$/m)?.[1] ?? raw.split('\n')[0];
  return status === undefined ? String(text) : `HTTP ${status}: ${text}`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

interface Listed<T> {
  readonly items: readonly T[];
  readonly resourceVersion: string;
}

/**
 * List, then watch from the list's resourceVersion, forever: a watch that ends is resumed from the
 * last version seen; one the API refuses as too old (410) starts over with a list; any other
 * failure waits (doubling, up to maxBackoffMs) and starts over.
 */
async function reflect<L, T>(o: {
  readonly name: string;
  /** The list, each item already reduced to what is kept. */
  readonly list: () => Promise<Listed<L>>;
  readonly watch: Watch;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly reset: (items: readonly L[]) => void;
  readonly event: (type: string, obj: T) => void;
  readonly synced: () => void;
  readonly stopped: () => boolean;
  readonly setAbort: (abort: (() => void) | undefined) => void;
  readonly maxBackoffMs: number;
  readonly log: (msg: string) => void;
}): Promise<void> {
  let backoff = 500;
  while (!o.stopped()) {
    let version: string;
    try {
      const listed = await o.list();
      o.reset(listed.items);
      version = listed.resourceVersion;
      o.synced();
      backoff = 500;
    } catch (err) {
      o.log(`listing ${o.name} failed (${describeError(err)}); again in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, o.maxBackoffMs);
      continue;
    }
    // Watch until the API says the version is gone (relist) or the watch fails (pause, relist).
    for (;;) {
      if (o.stopped()) return;
      let gone = false;
      const ended = await new Promise<unknown>((resolve) => {
        o.watch
          .watch(
            o.path,
            { ...o.query, resourceVersion: version, allowWatchBookmarks: 'true' },
            (type: string, obj: T & { metadata?: { resourceVersion?: string }; code?: number }) => {
              if (type === 'ERROR') {
                if (obj.code === 410) gone = true;
                return;
              }
              if (type !== 'BOOKMARK') o.event(type, obj);
              version = obj.metadata?.resourceVersion ?? version;
            },
            (err: unknown) => resolve(err ?? null),
          )
          .then((controller) => o.setAbort(() => controller.abort()))
          .catch(resolve);
      });
      o.setAbort(undefined);
      if (o.stopped()) return;
      if (gone || statusOf(ended) === 410) break;
      if (ended !== null) {
        o.log(`watching ${o.name} failed (${describeError(ended)}); listing again in ${backoff} ms`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, o.maxBackoffMs);
        break;
      }
    }
  }
}

/** Pods per page of the list. */
const LIST_PAGE = 100;

type Obj = { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> | null } };

/** This node's pods from the API; `onPod` sees every pod object as it arrives (repair). */
export function kubePods(client: KubeClient, o: KubeOptions, store: PodStore, logger: Logger, onPod: (pod: unknown) => void = () => {}): PodSource {
  const log = (msg: string) => logger.warn(msg);
  let stopped = false;
  let podsSynced = false;
  const aborts = new Map<string, () => void>();
  const watch = new Watch(client.config);
  const fieldSelector = `spec.nodeName=${o.nodeName}`;
  const toFacts = (pod: unknown) => {
    try {
      return factsFromPod(pod);
    } catch (err) {
      log(`ignoring an object the API sent as a pod: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      return undefined;
    }
  };
  void reflect<PodFacts, Obj>({
    name: `the pods of node ${o.nodeName}`,
    list: async () => {
      // In pages, as client-go's pager does, each reduced to its facts as it arrives: a node's
      // pods parsed whole are tens of MB.
      const items: PodFacts[] = [];
      let next: string | undefined;
      let resourceVersion = '';
      do {
        const l = await client.api.listPodForAllNamespaces({ fieldSelector, limit: LIST_PAGE, ...(next === undefined ? {} : { _continue: next }) });
        for (const pod of l.items) {
          const f = toFacts(pod);
          if (f !== undefined) items.push(f);
          onPod(pod);
        }
        resourceVersion = l.metadata?.resourceVersion ?? resourceVersion;
        next = l.metadata?._continue || undefined;
      } while (next !== undefined);
      return { items, resourceVersion };
    },
    watch,
    path: '/api/v1/pods',
    query: { fieldSelector },
    reset: (items) => store.reset(items),
    event: (type, pod) => {
      logger.debug(`watch: ${type} pod ${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`);
      if (type === 'DELETED') {
        store.delete(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '');
        return;
      }
      const f = toFacts(pod);
      if (f !== undefined) store.set(f);
      onPod(pod);
    },
    synced: () => {
      if (!podsSynced) logger.info(`knows the ${store.size} pod(s) of node ${o.nodeName}`);
      podsSynced = true;
    },
    stopped: () => stopped,
    setAbort: (a) => (a === undefined ? aborts.delete('pods') : aborts.set('pods', a)),
    maxBackoffMs: o.maxBackoffMs,
    log,
  });
  void reflect<Obj, Obj>({
    name: 'namespaces',
    list: async () => {
      const l = await client.api.listNamespace();
      return { items: l.items as Obj[], resourceVersion: l.metadata?.resourceVersion ?? '' };
    },
    watch,
    path: '/api/v1/namespaces',
    query: {},
    reset: (items) => store.resetNamespaces(items.map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels }))),
    event: (type, n) => store.setNamespace(n.metadata?.name ?? '', type === 'DELETED' ? undefined : n.metadata?.labels),
    synced: () => {},
    stopped: () => stopped,
    setAbort: (a) => (a === undefined ? aborts.delete('namespaces') : aborts.set('namespaces', a)),
    maxBackoffMs: o.maxBackoffMs,
    log,
  });
  return {
    get synced() {
      return podsSynced;
    },
    get size() {
      return store.size;
    },
    async lookup(r): Promise<AgentReply> {
      const hit = known(store, r);
      if (hit !== undefined) return hit;
      // Not delivered by the watch yet (created a moment ago), or stale: ask for it.
      let last = '';
      for (let attempt = 1; attempt <= o.getAttempts; attempt++) {
        try {
          const pod = await withTimeout(client.api.readNamespacedPod({ name: r.name, namespace: r.namespace }), o.requestTimeoutMs, `GET pod ${r.namespace}/${r.name}`);
          const f = toFacts(pod);
          if (f === undefined) return { v: PROTOCOL_VERSION, error: `the API sent pod ${r.namespace}/${r.name} in a shape that is not a pod` };
          if (r.uid !== '' && f.uid !== '' && f.uid !== r.uid) {
            last = `the API has pod ${r.namespace}/${r.name} with uid ${f.uid}, not ${r.uid}`;
          } else {
            store.set(f);
            return known(store, r) ?? { v: PROTOCOL_VERSION, pod: f };
          }
        } catch (err) {
          if (statusOf(err) === 404) return { v: PROTOCOL_VERSION, missing: `the API has no pod ${r.namespace}/${r.name} (${describeError(err)})` };
          last = describeError(err);
        }
        if (attempt < o.getAttempts) await sleep(o.getRetryMs);
      }
      return { v: PROTOCOL_VERSION, error: `after ${o.getAttempts} attempt(s): ${last}` };
    },
    stop() {
      stopped = true;
      for (const abort of aborts.values()) abort();
    },
  };
}
