import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { startAgent, tempDir, type Agent } from './cni.js';

/** A self-signed certificate for 127.0.0.1 (openssl), the stand-in's and the kubeconfig's CA. */
function certificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'iit-h6-standin-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key'), '-out', join(dir, 'cert'), '-days', '1', '-subj', '/CN=kube-standin', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key'), 'utf8'), cert: readFileSync(join(dir, 'cert'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A STAND-IN for the Kubernetes API server (no real one can be installed here): HTTPS on
 * 127.0.0.1 with its own certificate (the kubeconfig it writes trusts it), serving the real shapes of the core/v1 calls the node agent makes through
 * @kubernetes/client-node: PodList and NamespaceList with metadata.resourceVersion, watches as
 * newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK, and ERROR with a 410 Status
 * when the version asked for is older than the history kept), GET of a pod, merge PATCH of
 * pods/status, DELETE with preconditions, and Status objects for 401, 404 and 409. Every object
 * change bumps one resourceVersion counter, as etcd's revision does. Bearer-token checked.
 */

type Obj = Record<string, unknown> & { metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; labels?: Record<string, string> } };
type Kind = 'pods' | 'namespaces';
interface Event {
  readonly kind: Kind;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
  readonly rv: number;
}
interface Watcher {
  readonly kind: Kind;
  readonly nodeName: string | undefined;
  readonly res: ServerResponse;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
}

const status = (code: number, reason: string, message: string, details?: Record<string, string>) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });

export class KubeStandIn {
  readonly requests: RequestRecord[] = [];
  private readonly objects = new Map<string, Obj>();
  private history: Event[] = [];
  private rv = 100;
  private watchers = new Set<Watcher>();
  private held: Event[] | undefined;
  private server: Server | undefined;
  /** The token the API accepts; anything else (an expired token) gets 401. */
  token = 'standin-token';
  port = 0;

  private tls = certificate();

  /** Every connection, from its first byte (a TLS handshake not finished is no HTTP connection yet). */
  private readonly sockets = new Set<import('node:net').Socket>();

  async start(): Promise<void> {
    this.server = createServer({ key: this.tls.key, cert: this.tls.cert }, (req, res) => this.handle(req, res));
    this.server.on('connection', (s: import('node:net').Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Down: no new connection is accepted and every one open is cut, mid-handshake included. */
  async stop(): Promise<void> {
    this.watchers.clear();
    const closed = new Promise<void>((resolve) => (this.server?.listening ? this.server.close(() => resolve()) : resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** A kubeconfig for the agent (--kubeconfig), with `token`. */
  kubeconfig(dir: string, token = this.token): string {
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: standin\n  cluster:\n    server: https://127.0.0.1:${this.port}\n    certificate-authority-data: ${Buffer.from(this.tls.cert).toString('base64')}`,
        'users:',
        `- name: agent\n  user:\n    token: ${token}`,
        'contexts:',
        '- name: standin\n  context:\n    cluster: standin\n    user: agent',
        'current-context: standin',
        '',
      ].join('\n'),
    );
    return file;
  }

  private key(kind: Kind, ns: string | undefined, name: string): string {
    return kind === 'pods' ? `pods/${ns ?? ''}/${name}` : `namespaces/${name}`;
  }

  /** Create or replace an object (a Pod or a Namespace); the change goes to the watches. */
  put(object: Record<string, unknown>): Obj {
    const o = structuredClone(object) as Obj;
    const kind: Kind = o['kind'] === 'Namespace' ? 'namespaces' : 'pods';
    const key = this.key(kind, o.metadata.namespace, o.metadata.name);
    const existed = this.objects.has(key);
    o.metadata.resourceVersion = String(++this.rv);
    o.metadata.uid ??= `uid-${o.metadata.name}`;
    this.objects.set(key, o);
    this.emit({ kind, type: existed ? 'MODIFIED' : 'ADDED', object: o, rv: this.rv });
    return o;
  }

  remove(kind: Kind, ns: string | undefined, name: string): boolean {
    const key = this.key(kind, ns, name);
    const o = this.objects.get(key);
    if (o === undefined) return false;
    this.objects.delete(key);
    const gone = { ...o, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } };
    this.emit({ kind, type: 'DELETED', object: gone, rv: this.rv });
    return true;
  }

  get(ns: string, name: string): Obj | undefined {
    return this.objects.get(this.key('pods', ns, name));
  }

  /** Stop delivering watch events (a slow watch): they are kept and sent by release(). */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const events = this.held ?? [];
    this.held = undefined;
    for (const e of events) this.deliver(e);
  }

  /** Forget the history: a watch resumed from an older version gets 410 Gone and must list again. */
  compact(): void {
    this.history = [];
  }

  /** End every watch stream (as the API does at its timeout); clients resume from their version. */
  closeWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  private emit(e: Event): void {
    this.history.push(e);
    if (this.held !== undefined) this.held.push(e);
    else this.deliver(e);
  }

  private deliver(e: Event): void {
    for (const w of this.watchers) if (this.matches(w.kind, w.nodeName, e.kind, e.object)) w.res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
  }

  private matches(kind: Kind, nodeName: string | undefined, k: Kind, o: Obj): boolean {
    return kind === k && (nodeName === undefined || (o['spec'] as { nodeName?: string } | undefined)?.nodeName === nodeName);
  }

  private list(kind: Kind, nodeName: string | undefined): Obj[] {
    return [...this.objects.entries()].filter(([k, o]) => k.startsWith(`${kind}/`) && this.matches(kind, nodeName, kind, o)).map(([, o]) => o);
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://standin');
    const query = Object.fromEntries(url.searchParams.entries());
    this.requests.push({ method: req.method ?? '', path: url.pathname, query });
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    const field = query['fieldSelector'] ?? '';
    const nodeName = field.startsWith('spec.nodeName=') ? field.slice('spec.nodeName='.length) : undefined;
    let body = '';
    req.on('data', (d: Buffer) => void (body += d.toString()));
    req.on('end', () => {
      const m = url.pathname.match(/^\/api\/v1\/(?:namespaces\/([^/]+)\/)?(pods|namespaces)(?:\/([^/]+))?(\/status)?$/);
      if (!m) {
        this.send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
        return;
      }
      const [, ns, kind, name, sub] = m as unknown as [string, string | undefined, Kind, string | undefined, string | undefined];
      if (name === undefined && req.method === 'GET' && query['watch'] === 'true') return this.watch(kind, nodeName, query['resourceVersion'], res);
      if (name === undefined && req.method === 'GET') {
        // Pages (limit, continue), as the API serves a chunked list: every page of one list has that list's version.
        const all = this.list(kind, nodeName).map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
        const token = query['continue'] ? (JSON.parse(Buffer.from(query['continue'], 'base64').toString()) as { rv: string; at: number }) : { rv: String(this.rv), at: 0 };
        const limit = query['limit'] ? Number(query['limit']) : all.length;
        const items = all.slice(token.at, token.at + limit);
        const more = token.at + limit < all.length;
        const metadata = { resourceVersion: token.rv, ...(more ? { continue: Buffer.from(JSON.stringify({ rv: token.rv, at: token.at + limit })).toString('base64'), remainingItemCount: all.length - token.at - limit } : {}) };
        this.send(res, 200, { kind: kind === 'pods' ? 'PodList' : 'NamespaceList', apiVersion: 'v1', metadata, items });
        return;
      }
      const key = this.key(kind, ns, name ?? '');
      const o = this.objects.get(key);
      if (o === undefined) {
        this.send(res, 404, status(404, 'NotFound', `${kind} "${name}" not found`, { name: name ?? '', kind }));
        return;
      }
      if (req.method === 'GET') return this.send(res, 200, o);
      if (req.method === 'PATCH' && sub === '/status') {
        const patch = JSON.parse(body) as { metadata?: { labels?: Record<string, string> } };
        const updated = this.put({ ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...patch.metadata?.labels } } });
        return this.send(res, 200, updated);
      }
      if (req.method === 'DELETE') {
        const pre = (JSON.parse(body || '{}') as { preconditions?: { uid?: string; resourceVersion?: string } }).preconditions;
        if ((pre?.uid && pre.uid !== o.metadata.uid) || (pre?.resourceVersion && pre.resourceVersion !== o.metadata.resourceVersion)) {
          return this.send(res, 409, status(409, 'Conflict', `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${o.metadata.uid}`));
        }
        this.remove(kind, ns, name ?? '');
        return this.send(res, 200, o);
      }
      this.send(res, 405, status(405, 'MethodNotAllowed', `${req.method} not allowed`));
    });
  }

  private watch(kind: Kind, nodeName: string | undefined, from: string | undefined, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w: Watcher = { kind, nodeName, res };
    const since = from === undefined || from === '' || from === '0' ? undefined : Number(from);
    if (since === undefined) {
      for (const o of this.list(kind, nodeName)) res.write(`${JSON.stringify({ type: 'ADDED', object: o })}\n`);
    } else {
      const oldest = this.history[0]?.rv ?? this.rv + 1;
      if (since < oldest - 1) {
        res.end(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${since} (${oldest - 1})`) })}\n`);
        return;
      }
      for (const e of this.history) if (e.rv > since && this.matches(kind, nodeName, e.kind, e.object)) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    }
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}

/** A pod as the API serves it, scheduled on `nodeName`. */
export function apiPod(namespace: string, name: string, nodeName: string, extra: { annotations?: Record<string, string>; labels?: Record<string, string>; status?: Record<string, unknown>; proxy?: boolean } = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, uid: `uid-${name}`, labels: extra.labels ?? { app: name }, annotations: { 'sidecar.istio.io/status': '{"initContainers":["istio-validation"],"containers":["istio-proxy"]}', ...extra.annotations }, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      nodeName,
      initContainers: [{ name: 'istio-validation', image: 'istio-iptables-ts', args: ['istio-iptables', '--run-validation', '--skip-rule-apply'] }],
      containers: [{ name: 'app', image: 'app' }, ...(extra.proxy === false ? [] : [{ name: 'istio-proxy', image: 'proxyv2', args: ['proxy', 'sidecar'], env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'false' }] }])],
    },
    status: { phase: 'Pending', ...extra.status },
  };
}

/** A stand-in API per test, and the agent a test starts against it. */
export interface StandInContext {
  api: KubeStandIn;
  agent: Agent | undefined;
  /** Start the agent for node node-a against this test's API (`token`: the kubeconfig's), with `args` and `extra`. */
  start(extra?: readonly string[], token?: string): Promise<Agent>;
}

/**
 * For each test of the file: a fresh stand-in API started; after it, the agent the test started
 * stopped, then the API, and the agent's directory removed. `args`: the file's agent flags.
 */
export function standInPerTest(tag: string, args: readonly string[]): StandInContext {
  const dirs: { remove(): void }[] = [];
  const ctx: StandInContext = {
    api: new KubeStandIn(),
    agent: undefined,
    async start(extra = [], token) {
      const d = tempDir(tag);
      dirs.push(d);
      ctx.agent = await startAgent(`${d.path}/run`, ['--kubeconfig', ctx.api.kubeconfig(d.path, token), '--node-name', 'node-a', ...args, ...extra]);
      return ctx.agent;
    },
  };
  beforeEach(async () => {
    ctx.api = new KubeStandIn();
    await ctx.api.start();
  });
  afterEach(async () => {
    await ctx.agent?.stop();
    ctx.agent = undefined;
    await ctx.api.stop();
    for (const d of dirs.splice(0)) d.remove();
  });
  return ctx;
}
