import { describe, expect, it } from 'vitest';
import { askAgent, podRequest, until } from '../support/cni.js';
import { apiPod, standInPerTest } from '../support/kube-standin.js';

/**
 * The node agent against a STAND-IN Kubernetes API server (test/support/kube-standin.ts: no
 * real API server can be installed here; the stand-in serves the API's real shapes): it lists and
 * watches its node's pods through @kubernetes/client-node, answers from what it knows, GETs a pod
 * it does not know yet, resumes and relists as the API demands, and fails boundedly when the API
 * refuses (401) or is down.
 */

const ctx = standInPerTest('kube', ['--api-attempts', '3', '--api-retry-ms', '100', '--api-timeout-ms', '1000', '--log-level', 'debug']);
const start = ctx.start;

const gets = (name: string) => ctx.api.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/pods/${name}`)).length;
const watching = () => ctx.api.watchCount >= 2;

describe('the agent against a stand-in API server', () => {
  it("lists and watches this node's pods only, and answers from what it knows without asking the API", { timeout: 20_000 }, async () => {
    ctx.api.put(apiPod('shop', 'web', 'node-a'));
    ctx.api.put(apiPod('shop', 'other', 'node-b'));
    ctx.api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio.io/dataplane-mode': 'none' } } });
    const a = await start();
    await until('the watches', watching);
    const list = ctx.api.requests.find((r) => r.path === '/api/v1/pods' && r.query['watch'] === undefined);
    expect(list?.query['fieldSelector']).toBe('spec.nodeName=node-a');
    const watch = ctx.api.requests.find((r) => r.path === '/api/v1/pods' && r.query['watch'] === 'true');
    expect(watch?.query).toMatchObject({ fieldSelector: 'spec.nodeName=node-a', resourceVersion: '103', allowWatchBookmarks: 'true' });
    const r = await askAgent(a.socket, podRequest('shop', 'web', 'uid-web'));
    expect(r).toMatchObject({ pod: { name: 'web', containers: ['istio-validation', 'app', 'istio-proxy'], proxy: { env: { ISTIO_META_DNS_CAPTURE: 'false' }, type: 'sidecar' }, namespaceDataplaneMode: 'none' } });
    expect(gets('web')).toBe(0);
  });

  it('lists a node with many pods in pages (limit and continue), as client-go does', { timeout: 20_000 }, async () => {
    for (let i = 0; i < 230; i++) ctx.api.put(apiPod('shop', `p${i}`, 'node-a'));
    const a = await start();
    await until('the watches', watching);
    const pages = ctx.api.requests.filter((r) => r.path === '/api/v1/pods' && r.query['watch'] === undefined);
    expect(pages.map((r) => [r.query['limit'], r.query['continue'] === undefined])).toEqual([['100', true], ['100', false], ['100', false]]);
    expect(await askAgent(a.socket, podRequest('shop', 'p229'))).toMatchObject({ pod: { name: 'p229' } });
    expect(await askAgent(a.socket, podRequest('shop', 'p0'))).toMatchObject({ pod: { name: 'p0' } });
    expect(gets('p229') + gets('p0')).toBe(0);
  });

  it('a pod created after the watch began: from the watch, or, when the watch lags, by a GET', { timeout: 20_000 }, async () => {
    const a = await start();
    await until('the watches', watching);
    ctx.api.put(apiPod('shop', 'new', 'node-a'));
    // The watch delivers it; the agent answers without a GET.
    await until('the watch event', () => a.log().includes('watch: ADDED pod shop/new'));
    expect(await askAgent(a.socket, podRequest('shop', 'new'))).toMatchObject({ pod: { name: 'new' } });
    expect(gets('new')).toBe(0);
    // A watch that lags: the kubelet runs ADD before the agent sees the pod; the GET finds it.
    ctx.api.hold();
    ctx.api.put(apiPod('shop', 'fresh', 'node-a'));
    expect(await askAgent(a.socket, podRequest('shop', 'fresh', 'uid-fresh'))).toMatchObject({ pod: { name: 'fresh', uid: 'uid-fresh' } });
    expect(gets('fresh')).toBe(1);
    ctx.api.release();
  });

  it('a pod the API does not have: missing (404 Status), after one GET', { timeout: 20_000 }, async () => {
    const a = await start();
    await until('the watches', watching);
    expect(await askAgent(a.socket, podRequest('shop', 'ghost'))).toMatchObject({ missing: expect.stringMatching(/HTTP 404: pods "ghost" not found/) });
    expect(gets('ghost')).toBe(1);
  });

  it('forgets deleted pods, and a recreated pod (another uid) is fetched again', { timeout: 20_000 }, async () => {
    ctx.api.put(apiPod('shop', 'web', 'node-a'));
    const a = await start();
    await until('the watches', watching);
    ctx.api.remove('pods', 'shop', 'web');
    ctx.api.put({ ...apiPod('shop', 'web', 'node-a'), metadata: { ...(apiPod('shop', 'web', 'node-a')['metadata'] as object), uid: 'uid-web-2' } });
    const r = await askAgent(a.socket, podRequest('shop', 'web', 'uid-web-2'));
    expect(r).toMatchObject({ pod: { uid: 'uid-web-2' } });
  });

  it('resumes a watch the API ends, and lists again when its version is too old (410 Gone)', { timeout: 30_000 }, async () => {
    ctx.api.put(apiPod('shop', 'a', 'node-a'));
    const a = await start();
    await until('the watches', watching);
    const lists = () => ctx.api.requests.filter((r) => r.path === '/api/v1/pods' && r.query['watch'] === undefined).length;
    expect(lists()).toBe(1);
    // The API ends the watch (its timeout): resumed from the last version, no new list.
    ctx.api.closeWatches();
    await until('watching again', watching);
    expect(lists()).toBe(1);
    // Changes while it was not watching, then the history compacted: 410, a fresh list.
    ctx.api.hold();
    ctx.api.closeWatches();
    ctx.api.remove('pods', 'shop', 'a');
    ctx.api.put(apiPod('shop', 'b', 'node-a'));
    ctx.api.compact();
    ctx.api.release();
    await until('listed again', () => lists() === 2, 15_000);
    await until('watching again', watching);
    expect(await askAgent(a.socket, podRequest('shop', 'b'))).toMatchObject({ pod: { name: 'b' } });
    expect(gets('b')).toBe(0);
  });

  it('401 (an expired token): keeps running and serving, answers an error after bounded attempts', { timeout: 20_000 }, async () => {
    ctx.api.put(apiPod('shop', 'web', 'node-a'));
    const a = await start([], 'expired-token');
    const started = Date.now();
    const r = await askAgent(a.socket, podRequest('shop', 'web'));
    expect(r).toMatchObject({ error: expect.stringMatching(/after 3 attempt\(s\): HTTP 401: Unauthorized/) });
    expect(Date.now() - started).toBeLessThan(3 * (1000 + 100) + 1000);
    expect(gets('web')).toBe(3);
    expect(a.process.exitCode).toBeNull();
    await until('the 401 in its log', () => /listing the pods of node node-a failed \(HTTP 401: Unauthorized\)/.test(a.log()));
  });

  it('the API down: an error after bounded attempts, and the agent keeps serving', { timeout: 20_000 }, async () => {
    const a = await start();
    await until('the watches', watching);
    await ctx.api.stop();
    const started = Date.now();
    const r = await askAgent(a.socket, podRequest('shop', 'web'));
    expect(r).toMatchObject({ error: expect.stringMatching(/after 3 attempt\(s\)/) });
    expect(Date.now() - started).toBeLessThan(3 * (1000 + 100) + 1000);
    expect(a.process.exitCode).toBeNull();
  });
});
