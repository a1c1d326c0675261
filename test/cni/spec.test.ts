import { describe, expect, it } from 'vitest';
import { CNI_CODE, CniError, parseCniArgs, parseConf, parseParams, renderError, renderResult, renderVersion, SUPPORTED_VERSIONS, versionOf } from '../../src/cni/spec.js';

/** The CNI protocol's pure parts (src/cni/spec.ts): parameters, CNI_ARGS, the conf, the output. */

const ADD_ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
const CONF = { cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'istio-cni', cni_agent_run_dir: '/var/run/istio-cni' };

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CniError ? err.code : -1;
  }
  return undefined;
}

describe('parseParams', () => {
  it('reads an ADD', () => {
    const p = parseParams({ ...ADD_ENV, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u' });
    expect(p).toMatchObject({ command: 'ADD', containerId: 'c1', netns: '/var/run/netns/x', args: { podNamespace: 'ns', podName: 'p', podUid: 'u' } });
  });

  it.each([
    ['no CNI_COMMAND', { ...ADD_ENV, CNI_COMMAND: undefined }, /CNI_COMMAND is missing/],
    ['an unknown command', { ...ADD_ENV, CNI_COMMAND: 'GC' }, /invalid value "GC" for CNI_COMMAND/],
    ['ADD without CNI_NETNS', { ...ADD_ENV, CNI_NETNS: undefined }, /CNI_NETNS missing for ADD/],
    ['CHECK without CNI_CONTAINERID and CNI_PATH', { ...ADD_ENV, CNI_COMMAND: 'CHECK', CNI_CONTAINERID: '', CNI_PATH: undefined }, /variables CNI_CONTAINERID, CNI_PATH missing for CHECK/],
    ['a relative CNI_NETNS', { ...ADD_ENV, CNI_NETNS: 'netns' }, /"netns" for CNI_NETNS: expected an absolute path/],
  ])('%s is error 4, naming the variable', (_n, env, message) => {
    expect(() => parseParams(env)).toThrow(message);
    expect(codeOf(() => parseParams(env))).toBe(CNI_CODE.invalidEnv);
  });

  it('DEL needs no namespace; VERSION needs nothing but the command', () => {
    expect(parseParams({ ...ADD_ENV, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns).toBeUndefined();
    expect(parseParams({ CNI_COMMAND: 'VERSION' }).command).toBe('VERSION');
  });
});

describe('parseCniArgs (as libcni reads CNI_ARGS)', () => {
  it.each([
    ['', { podName: '', podNamespace: '' }],
    ['IgnoreUnknown=1;K8S_POD_NAME=httpbin', { podName: 'httpbin', podNamespace: '' }],
    ['IgnoreUnknown=true;FOO=bar;K8S_POD_NAMESPACE=default', { podNamespace: 'default' }],
    ['K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=d', { podNamespace: 'a', podName: 'b', infraContainerId: 'c', podUid: 'd' }],
  ])('%j', (text, want) => {
    expect(parseCniArgs(text)).toMatchObject(want);
  });

  it.each([
    ['FOO=bar', /unknown key "FOO"/],
    ['IgnoreUnknown=0;FOO=bar', /unknown key "FOO"/],
    ['K8S_POD_NAME', /KEY=VALUE pairs/],
    ['K8S_POD_NAME=a=b', /KEY=VALUE pairs/],
    ['IgnoreUnknown=maybe', /IgnoreUnknown/],
  ])('refuses %j (error 4)', (text, message) => {
    expect(() => parseCniArgs(text)).toThrow(message);
    expect(codeOf(() => parseCniArgs(text))).toBe(CNI_CODE.invalidEnv);
  });
});

describe('parseConf', () => {
  it("reads Istio's keys as install-cni writes them", () => {
    const c = parseConf(JSON.stringify({ ...CONF, plugin_log_level: 'debug', exclude_namespaces: ['kube-system'], pod_namespace: 'istio-system', native_nftables: true, ambient_enabled: false, enablement_selectors: [], ipam: {}, dns: {} }));
    expect(c).toMatchObject({ cniVersion: '1.0.0', logLevel: 'debug', agentRunDir: '/var/run/istio-cni', excludeNamespaces: ['kube-system'], podNamespace: 'istio-system', nativeNftables: true });
  });

  it('takes exclude_namespaces null as none (Istio writes null)', () => {
    expect(parseConf(JSON.stringify({ ...CONF, exclude_namespaces: null })).excludeNamespaces).toEqual([]);
  });

  it.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '0.1.0', '0.2.0'])('accepts cniVersion %s', (v) => {
    expect(parseConf(JSON.stringify({ ...CONF, cniVersion: v })).cniVersion).toBe(v);
  });

  it.each([
    ['not JSON', '{"cniVersion":', CNI_CODE.decode],
    ['not an object', '[1]', CNI_CODE.decode],
    ['a version we do not speak', JSON.stringify({ ...CONF, cniVersion: '2.0.0' }), CNI_CODE.incompatibleVersion],
    ['no cniVersion', JSON.stringify({ name: 'x', cni_agent_run_dir: '/r' }), CNI_CODE.invalidConfig],
    ['exclude_namespaces not a list', JSON.stringify({ ...CONF, exclude_namespaces: 'kube-system' }), CNI_CODE.invalidConfig],
    ['native_nftables a string', JSON.stringify({ ...CONF, native_nftables: 'true' }), CNI_CODE.invalidConfig],
    ['no cni_agent_run_dir', JSON.stringify({ ...CONF, cni_agent_run_dir: undefined }), CNI_CODE.invalidConfig],
    ['a relative cni_agent_run_dir', JSON.stringify({ ...CONF, cni_agent_run_dir: 'run' }), CNI_CODE.invalidConfig],
    ['ambient_enabled true', JSON.stringify({ ...CONF, ambient_enabled: true }), CNI_CODE.invalidConfig],
    ['an unknown plugin_log_level', JSON.stringify({ ...CONF, plugin_log_level: 'loud' }), CNI_CODE.invalidConfig],
    ['prevResult not an object', JSON.stringify({ ...CONF, prevResult: [] }), CNI_CODE.invalidConfig],
  ])('%s is error %#', (_n, text, code) => {
    expect(codeOf(() => parseConf(text))).toBe(code);
  });

  it('names the key of a wrong type', () => {
    expect(() => parseConf(JSON.stringify({ ...CONF, pod_namespace: 3 }))).toThrow(/pod_namespace in the network configuration: expected a value of type string/);
  });
});

describe('output', () => {
  it('VERSION lists 0.1.0 through 1.0.0', () => {
    expect(JSON.parse(renderVersion())).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
    expect(SUPPORTED_VERSIONS).toHaveLength(6);
  });

  it('passes the previous result on, in the configuration\'s version', () => {
    const prev = { cniVersion: '0.3.1', interfaces: [{ name: 'eth0' }], ips: [{ version: '4', address: '10.1.0.5/16', interface: 0 }] };
    const r = JSON.parse(renderResult(parseConf(JSON.stringify({ ...CONF, cniVersion: '0.3.1', prevResult: prev }))));
    expect(r).toEqual(prev);
  });

  it('first in a chain: an empty result', () => {
    expect(JSON.parse(renderResult(parseConf(JSON.stringify({ ...CONF, cniVersion: '0.4.0' }))))).toEqual({ cniVersion: '0.4.0' });
  });

  it("writes the spec's error object, in the configuration's version when it can be read", () => {
    const e = new CniError(11, 'try later', 'why');
    expect(JSON.parse(renderError(versionOf(JSON.stringify({ cniVersion: '0.4.0' })), e))).toEqual({ cniVersion: '0.4.0', code: 11, msg: 'try later', details: 'why' });
    expect(versionOf('garbage')).toBe('1.0.0');
    expect(versionOf('{"cniVersion":"9.9.9"}')).toBe('1.0.0');
  });
});
