import { describe, expect, it } from 'vitest';
import { redirectConfig, redirectOptions } from '../../src/cni/config.js';
import { AmbientPodError, decide, factsFromPod, redirectFor, RedirectError, type PodFacts } from '../../src/cni/pod.js';
import { fixedHost } from '../../src/config/host.js';
import { ConfigError } from '../../src/errors.js';

/**
 * Istio's decisions about a pod (cni/pkg/plugin/plugin.go's skip rules, in its order, and
 * sidecar_redirect.go's mapping), on pods as the API serves them.
 */

type Container = { name: string; args?: string[]; env?: { name: string; value?: string }[]; securityContext?: Record<string, unknown> };
function pod(o: { annotations?: Record<string, string>; labels?: Record<string, string>; containers?: Container[]; initContainers?: Container[] } = {}): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', uid: 'u-1', annotations: { 'sidecar.istio.io/status': '{}', ...o.annotations }, labels: o.labels ?? {} },
    spec: { initContainers: o.initContainers ?? [{ name: 'istio-validation' }], containers: o.containers ?? [{ name: 'app' }, { name: 'istio-proxy', args: ['proxy', 'sidecar'] }] },
  };
}
const facts = (o?: Parameters<typeof pod>[0]): PodFacts => factsFromPod(pod(o));
const proxy = (extra: Partial<Container> = {}): Container => ({ name: 'istio-proxy', args: ['proxy', 'sidecar'], ...extra });

describe('factsFromPod', () => {
  it('keeps only what the plugin reads', () => {
    const f = factsFromPod({
      metadata: { name: 'p', namespace: 'n', uid: 'u', labels: { app: 'x', 'sidecar.istio.io/inject': 'true' }, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{...}', 'sidecar.istio.io/status': '{}' } },
      spec: { initContainers: [{ name: 'istio-validation' }], containers: [{ name: 'istio-proxy', args: ['proxy', 'router'], env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }, { name: 'POD_NAME', valueFrom: {} }], securityContext: { runAsUser: 7, runAsGroup: 8 } }] },
      status: { phase: 'Pending' },
    });
    expect(f).toEqual({
      namespace: 'n',
      name: 'p',
      uid: 'u',
      containers: ['istio-validation', 'istio-proxy'],
      labels: { 'sidecar.istio.io/inject': 'true' },
      annotations: { 'sidecar.istio.io/status': '{}' },
      proxy: { env: { ISTIO_META_DNS_CAPTURE: 'true' }, type: 'router', runAsUser: 7, runAsGroup: 8 },
    });
  });

  it('finds istio-proxy among init containers (a native sidecar)', () => {
    expect(facts({ initContainers: [{ name: 'istio-validation' }, proxy({ env: [{ name: 'ISTIO_DUAL_STACK', value: 'true' }] })], containers: [{ name: 'app' }] }).proxy?.env).toEqual({ ISTIO_DUAL_STACK: 'true' });
  });

  it('refuses what is not a pod', () => {
    expect(() => factsFromPod({ metadata: {} })).toThrow();
    expect(() => factsFromPod('pod')).toThrow();
  });
});

describe("decide: Istio's skip rules in Istio's order", () => {
  it.each([
    ['an istio-init container (injected without CNI)', { initContainers: [{ name: 'istio-init' }, { name: 'x' }] }, /istio-init/],
    ['DISABLE_ENVOY on istio-proxy', { containers: [proxy({ env: [{ name: 'DISABLE_ENVOY', value: 'True' }] })] }, /DISABLE_ENVOY/],
    ['no istio-proxy container', { containers: [{ name: 'app' }] }, /does not have istio-proxy container \(have app, istio-validation\)/],
    ['a gateway (proxy router)', { containers: [proxy({ args: ['proxy', 'router'] })] }, /proxy type router/],
    ['injection disabled by annotation', { annotations: { 'sidecar.istio.io/inject': 'false' } }, /inject-disabled/],
    ['injection disabled by label, which wins over the annotation', { labels: { 'sidecar.istio.io/inject': 'false' }, annotations: { 'sidecar.istio.io/inject': 'true' } }, /inject-disabled/],
  ])('skips a pod with %s', (_n, o, reason) => {
    const d = decide(facts(o));
    expect(d.capture).toBe(false);
    expect(d.capture ? '' : d.reason).toMatch(reason);
  });

  it('skips a pod without sidecar status', () => {
    const f = facts();
    const d = decide({ ...f, annotations: {} });
    expect(d).toEqual({ capture: false, reason: 'excluded due to not containing sidecar annotation' });
  });

  it('checks istio-init before DISABLE_ENVOY, and that before the proxy container', () => {
    expect(decide(facts({ initContainers: [{ name: 'istio-init' }], containers: [proxy({ env: [{ name: 'DISABLE_ENVOY', value: 'true' }] })] }))).toMatchObject({ reason: expect.stringMatching(/istio-init/) });
  });

  it.each([
    ['a label that is not a boolean', { labels: { 'sidecar.istio.io/inject': 'maybe' } }],
    ['DISABLE_ENVOY that is not a boolean', { containers: [proxy({ env: [{ name: 'DISABLE_ENVOY', value: 'yes' }] })] }],
    ['an empty proxy type', { containers: [{ name: 'istio-proxy' }] }],
  ])('captures a pod with %s (Istio ignores it)', (_n, o) => {
    expect(decide(facts(o)).capture).toBe(true);
  });

  it('refuses an ambient pod with an error instead of letting it start uncaptured', () => {
    expect(() => decide(facts({ labels: { 'istio.io/dataplane-mode': 'ambient' }, containers: [{ name: 'app' }] }))).toThrow(AmbientPodError);
    expect(() => decide({ ...facts({ containers: [{ name: 'app' }] }), namespaceDataplaneMode: 'ambient' })).toThrow(/ambient on its namespace shop/);
    // Opted out on the pod: the namespace's label does not apply.
    expect(decide({ ...facts({ labels: { 'istio.io/dataplane-mode': 'none' }, containers: [{ name: 'app' }] }), namespaceDataplaneMode: 'ambient' }).capture).toBe(false);
  });
});

describe("redirectFor: Istio's annotation and env mapping", () => {
  it("Istio's defaults", () => {
    const r = redirectFor(facts());
    expect(r).toMatchObject({
      proxyPort: '15001',
      mode: 'REDIRECT',
      proxyUid: '1337',
      proxyGid: '1337',
      includeIpRanges: '*',
      excludeIpRanges: '',
      includeInboundPorts: '*',
      excludeInboundPorts: '15020,15021,15090',
      includeOutboundPorts: '',
      excludeOutboundPorts: '15020',
      rerouteVirtualInterfaces: '',
      excludeInterfaces: '',
      dnsRedirect: false,
      dualStack: false,
      invalidDrop: false,
    });
  });

  it.each([
    ['3333,4444', '3333,4444,15020,15021,15090'],
    ['15090,80', '15090,80,15020,15021'],
    [' 8080 ', '8080,15020,15021,15090'],
    ['  ', '15020,15021,15090'],
    ['', '15020,15021,15090'],
  ])('inbound exclusions %j become %j', (value, want) => {
    expect(redirectFor(facts({ annotations: { 'traffic.sidecar.istio.io/excludeInboundPorts': value } })).excludeInboundPorts).toBe(want);
  });

  it('takes uid and gid from the proxy\'s securityContext, 0 as the default', () => {
    expect(redirectFor(facts({ containers: [proxy({ securityContext: { runAsUser: 1000670000, runAsGroup: 1000670001 } })] }))).toMatchObject({ proxyUid: '1000670000', proxyGid: '1000670001' });
    expect(redirectFor(facts({ containers: [proxy({ securityContext: { runAsUser: 0 } })] }))).toMatchObject({ proxyUid: '1337', proxyGid: '1337' });
  });

  it('reads the proxy env as Go booleans', () => {
    const r = redirectFor(facts({ containers: [proxy({ env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'T' }, { name: 'ISTIO_DUAL_STACK', value: '1' }, { name: 'INVALID_DROP', value: 'on' }] })] }));
    expect(r).toMatchObject({ dnsRedirect: true, dualStack: true, invalidDrop: false });
  });

  it('prefers reroute-virtual-interfaces over the deprecated kubevirtInterfaces', () => {
    expect(redirectFor(facts({ annotations: { 'istio.io/reroute-virtual-interfaces': 'a', 'traffic.sidecar.istio.io/kubevirtInterfaces': 'b' } })).rerouteVirtualInterfaces).toBe('a');
    expect(redirectFor(facts({ annotations: { 'traffic.sidecar.istio.io/kubevirtInterfaces': 'b' } })).rerouteVirtualInterfaces).toBe('b');
  });

  it.each([
    ['sidecar.istio.io/interceptionMode', 'NONE', /REDIRECT or TPROXY/],
    ['traffic.sidecar.istio.io/includeInboundPorts', '80,http', /list of ports or "\*"/],
    ['traffic.sidecar.istio.io/excludeOutboundPorts', '70000', /list of ports/],
    ['traffic.sidecar.istio.io/excludeOutboundIPRanges', '*', /list of CIDRs/],
  ])('refuses %s=%j, naming the annotation', (key, value, expected) => {
    let err: unknown;
    try {
      redirectFor(facts({ annotations: { [key]: value } }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RedirectError);
    expect((err as Error).message).toContain(`for annotation ${key}`);
    expect((err as Error).message).toMatch(expected);
  });
});

describe('redirectConfig', () => {
  it('is CNI mode in the pod\'s namespace, DNS capture of all of port 53', () => {
    const r = redirectFor(facts({ containers: [proxy({ env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }] })] }));
    expect(redirectOptions(r, '/var/run/netns/p', false)).toMatchObject({ networkNamespace: '/var/run/netns/p', cniMode: true, redirectDns: true, captureAllDns: true });
    const c = redirectConfig(r, '/var/run/netns/p', true, fixedHost({ ipv6: true }));
    expect(c.run).toMatchObject({ networkNamespace: '/var/run/netns/p', nativeNftables: true });
    expect(c.capture).toMatchObject({ redirectDns: true, captureAllDns: true, enableIpv6: true });
  });

  it('a value the configuration refuses names the annotation it came from', () => {
    const r = redirectFor(facts({ annotations: { 'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/33' } }));
    expect(() => redirectConfig(r, '/n', false, fixedHost())).toThrow(ConfigError);
    expect(() => redirectConfig(r, '/n', false, fixedHost())).toThrow(/for annotation traffic.sidecar.istio.io\/includeOutboundIPRanges/);
  });
});
