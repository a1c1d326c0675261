import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hasPlugin, install, primaryConfig, uninstall, withoutPlugin, withPlugin, type PluginEntry } from '../../src/agent/install.js';
import { nodeDirs } from '../support/cni.js';

/**
 * Installing the plugin into a node's CNI configuration (src/agent/install.ts) on the shapes the
 * two runtimes here write: a Kubernetes CNI's list (as Istio's install tests use: a bridge and a
 * tuning plugin), a single-plugin .conf, and podman's own conflist.
 */

const ENTRY: PluginEntry = {
  type: 'istio-cni',
  name: 'istio-cni',
  plugin_log_level: 'info',
  cni_agent_run_dir: '/var/run/istio-cni',
  ambient_enabled: false,
  exclude_namespaces: ['kube-system'],
  pod_namespace: 'istio-system',
  native_nftables: false,
};

/** A cluster CNI's list, in the shape of Istio's install test data (our own values). */
const K8S_LIST = {
  cniVersion: '0.4.0',
  name: 'podnet',
  plugins: [
    { type: 'bridge', bridge: 'cbr0', args: { labels: { tier: 'db' } }, ipam: { type: 'host-local', subnet: '10.244.0.0/16', gateway: '10.244.0.1' }, dns: { nameservers: ['10.244.0.1'] } },
    { type: 'tuning', sysctl: { 'net.core.somaxconn': '1024' } },
  ],
};
/** A single plugin's .conf. */
const K8S_CONF = { cniVersion: '0.4.0', name: 'podnet', type: 'bridge', bridge: 'cbr0', ipam: { type: 'host-local', subnet: '10.244.0.0/16' } };
/** podman 4.3's own network (its CNI backend writes this shape). */
const PODMAN = {
  cniVersion: '0.4.0',
  name: 'podman',
  plugins: [
    { type: 'bridge', bridge: 'cni-podman0', isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet: '10.88.0.0/16', gateway: '10.88.0.1' }]] } },
    { type: 'portmap', capabilities: { portMappings: true } },
    { type: 'firewall' },
    { type: 'tuning' },
  ],
};

const text = (o: unknown) => `${JSON.stringify(o, null, 2)}\n`;
const plugins = (t: string) => (JSON.parse(t) as { plugins: { type: string }[] }).plugins;

describe('withPlugin / withoutPlugin', () => {
  it.each([
    ['a Kubernetes CNI list', K8S_LIST],
    ["podman's conflist", PODMAN],
  ])('appends istio-cni last to %s, the rest unchanged', (_n, list) => {
    const out = withPlugin(text(list), ENTRY);
    expect(JSON.parse(out)).toEqual({ ...list, plugins: [...list.plugins, ENTRY] });
    expect(hasPlugin(out, ENTRY)).toBe(true);
    expect(JSON.parse(withoutPlugin(out))).toEqual(list);
  });

  it('turns a single .conf into a list of it and istio-cni', () => {
    const out = JSON.parse(withPlugin(text(K8S_CONF), ENTRY)) as Record<string, unknown>;
    const { cniVersion: _v, ...single } = K8S_CONF;
    expect(out).toEqual({ cniVersion: '0.4.0', name: 'k8s-pod-network', plugins: [single, ENTRY] });
  });

  it('is idempotent, and leaves one entry where there were several (another installer, an older one of ours)', () => {
    const twice = withPlugin(withPlugin(text(K8S_LIST), ENTRY), ENTRY);
    expect(twice).toBe(withPlugin(text(K8S_LIST), ENTRY));
    const old = { type: 'istio-cni', name: 'istio-cni', kubernetes: { kubeconfig: '/etc/cni/net.d/ZZZ-istio-cni-kubeconfig' } };
    const dup = text({ ...K8S_LIST, plugins: [old, ...K8S_LIST.plugins, old] });
    expect(hasPlugin(dup, ENTRY)).toBe(false);
    expect(plugins(withPlugin(dup, ENTRY)).map((p) => p.type)).toEqual(['bridge', 'tuning', 'istio-cni']);
  });

  it('sees our entry whatever order another tool wrote its keys in', () => {
    const sorted = Object.fromEntries(Object.entries(ENTRY).sort(([a], [b]) => a.localeCompare(b)));
    expect(hasPlugin(text({ ...K8S_LIST, plugins: [...K8S_LIST.plugins, sorted] }), ENTRY)).toBe(true);
    expect(hasPlugin(text({ ...K8S_LIST, plugins: [...K8S_LIST.plugins, { ...ENTRY, plugin_log_level: 'debug' }] }), ENTRY)).toBe(false);
    expect(hasPlugin(text({ ...K8S_LIST, plugins: [ENTRY, ...K8S_LIST.plugins] }), ENTRY)).toBe(false);
  });

  it.each([
    ['not JSON', '{'],
    ['a list without plugins', text({ cniVersion: '0.4.0', name: 'x', plugins: 'bridge' })],
    ['a plugin that is not an object', text({ cniVersion: '0.4.0', name: 'x', plugins: [3] })],
  ])('refuses %s, naming the file', (_n, t) => {
    expect(() => withPlugin(t, ENTRY, '/etc/cni/net.d/10-x.conflist')).toThrow(/\/etc\/cni\/net.d\/10-x.conflist/);
  });
});

describe('install and uninstall on a directory', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => d.remove()));

  function node(files: Record<string, unknown>) {
    const d = nodeDirs('install');
    dirs.push(d);
    const { net: conf, bin } = d;
    const plugin = join(d.path, 'istio-cni.src');
    writeFileSync(plugin, '#!/bin/false\nplugin v1\n');
    for (const [name, content] of Object.entries(files)) writeFileSync(join(conf, name), typeof content === 'string' ? content : text(content), { mode: 0o644 });
    return { conf, bin, plugin, o: { confDir: conf, binDirs: [bin], plugin, entry: ENTRY } };
  }

  it('picks the first loadable file in name order, as the kubelet does', () => {
    const n = node({ '05-broken.conflist': '{', '10-calico.conflist': K8S_LIST, '99-other.conf': K8S_CONF, 'README': 'x' });
    expect(primaryConfig(n.conf)).toBe(join(n.conf, '10-calico.conflist'));
    expect(primaryConfig(n.conf, '99-other.conf')).toBe(join(n.conf, '99-other.conf'));
    expect(primaryConfig(n.conf, '99-other.conflist')).toBe(join(n.conf, '99-other.conf'));
  });

  it('copies the plugin (0755) and appends the entry, keeping the file\'s mode; a second run changes nothing', () => {
    const n = node({ '87-podman-bridge.conflist': PODMAN });
    chmodSync(join(n.conf, '87-podman-bridge.conflist'), 0o600);
    const first = install(n.o);
    expect(first.changed).toEqual([join(n.bin, 'istio-cni'), join(n.conf, '87-podman-bridge.conflist')]);
    expect(readFileSync(join(n.bin, 'istio-cni'), 'utf8')).toBe('#!/bin/false\nplugin v1\n');
    expect(statSync(join(n.bin, 'istio-cni')).mode & 0o777).toBe(0o755);
    expect(statSync(join(n.conf, '87-podman-bridge.conflist')).mode & 0o777).toBe(0o600);
    expect(plugins(readFileSync(first.conf, 'utf8')).map((p) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning', 'istio-cni']);
    const before = readFileSync(first.conf, 'utf8');
    expect(install(n.o).changed).toEqual([]);
    expect(readFileSync(first.conf, 'utf8')).toBe(before);
    // No temporary file left behind.
    expect(readdirSync(n.conf)).toEqual(['87-podman-bridge.conflist']);
  });

  it('puts the entry back when another tool rewrites the file, and a changed plugin binary back', () => {
    const n = node({ '10-calico.conflist': K8S_LIST });
    const { conf } = install(n.o);
    writeFileSync(conf, text({ ...K8S_LIST, plugins: [...K8S_LIST.plugins, { type: 'portmap' }] }));
    writeFileSync(join(n.bin, 'istio-cni'), 'tampered');
    const again = install(n.o);
    expect(again.changed).toEqual([join(n.bin, 'istio-cni'), conf]);
    expect(plugins(readFileSync(conf, 'utf8')).map((p) => p.type)).toEqual(['bridge', 'tuning', 'portmap', 'istio-cni']);
    expect(readFileSync(join(n.bin, 'istio-cni'), 'utf8')).toBe('#!/bin/false\nplugin v1\n');
  });

  it('turns a .conf into a .conflist (the .conf removed: the runtime would load both)', () => {
    const n = node({ '10-bridge.conf': K8S_CONF });
    const r = install(n.o);
    expect(r.conf).toBe(join(n.conf, '10-bridge.conflist'));
    expect(readdirSync(n.conf)).toEqual(['10-bridge.conflist']);
    expect(plugins(readFileSync(r.conf, 'utf8')).map((p) => p.type)).toEqual(['bridge', 'istio-cni']);
  });

  it('waits for a configuration: none yet is an error the agent retries', () => {
    const n = node({});
    expect(() => install(n.o)).toThrow(/no CNI network configuration in .* yet/);
    // The binary is in place already, so a pod's ADD finds it the moment the configuration names it.
    expect(existsSync(join(n.bin, 'istio-cni'))).toBe(true);
  });

  it('uninstall removes our entry and binary, and leaves the rest as it was', () => {
    const n = node({ '10-calico.conflist': K8S_LIST });
    const { conf } = install(n.o);
    expect(uninstall(n.o, conf)).toEqual([conf, join(n.bin, 'istio-cni')]);
    expect(JSON.parse(readFileSync(conf, 'utf8'))).toEqual(K8S_LIST);
    expect(existsSync(join(n.bin, 'istio-cni'))).toBe(false);
    expect(uninstall(n.o, conf)).toEqual([]);
  });
});
