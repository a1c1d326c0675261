import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/*
 * Installing the plugin on the node, as Istio's install-cni does for a chained plugin
 * (cni/pkg/install): the executable copied into the host's CNI bin directories, and `istio-cni`
 * added as the last plugin of the primary network configuration (the first valid file of the
 * CNI config directory, as the kubelet picks it), a single-plugin .conf turned into a .conflist.
 * Any istio-cni entries already there are replaced by one (a list with two would run the plugin
 * twice), the file is written atomically with its mode kept, and only when it changes.
 */

export const PLUGIN_TYPE = 'istio-cni';

/** Our entry in the conflist: Istio's keys, as install-cni writes them (no cniVersion: the list's). */
export interface PluginEntry {
  readonly type: typeof PLUGIN_TYPE;
  readonly name: typeof PLUGIN_TYPE;
  readonly plugin_log_level: string;
  readonly cni_agent_run_dir: string;
  readonly ambient_enabled: false;
  readonly exclude_namespaces: readonly string[];
  readonly pod_namespace: string;
  readonly native_nftables: boolean;
}

type Json = Record<string, unknown>;

export class InstallError extends Error {
  override readonly name = 'InstallError';
}

function pluginsOf(list: Json, file: string): Json[] {
  const plugins = list['plugins'];
  if (!Array.isArray(plugins)) throw new InstallError(`${file}: "plugins" is not a list`);
  return plugins.map((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new InstallError(`${file}: plugin ${i} is not an object`);
    return p as Json;
  });
}

function parseJson(text: string, file: string): Json {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InstallError(`${file}: not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InstallError(`${file}: not a JSON object`);
  return json as Json;
}

/** The configuration's text with our entry last (and no other istio-cni entry); .conf input becomes a list. */
export function withPlugin(text: string, entry: PluginEntry, file = 'the CNI configuration'): string {
  const conf = parseJson(text, file);
  let list: Json;
  if (typeof conf['type'] === 'string') {
    // A single plugin's .conf: a list of it and ours (the list takes the name Istio gives it).
    const { cniVersion: _v, ...single } = conf;
    list = { cniVersion: typeof conf['cniVersion'] === 'string' ? conf['cniVersion'] : '0.3.1', name: 'k8s-pod-network', plugins: [single] };
  } else {
    list = conf;
  }
  const plugins = pluginsOf(list, file).filter((p) => p['type'] !== PLUGIN_TYPE);
  return `${JSON.stringify({ ...list, plugins: [...plugins, entry] }, null, 2)}\n`;
}

/** The configuration's text with every istio-cni entry removed (the rest as it was). */
export function withoutPlugin(text: string, file = 'the CNI configuration'): string {
  const list = parseJson(text, file);
  if (typeof list['type'] === 'string') return text;
  return `${JSON.stringify({ ...list, plugins: pluginsOf(list, file).filter((p) => p['type'] !== PLUGIN_TYPE) }, null, 2)}\n`;
}

/** JSON with object keys in sorted order: equal texts, equal values (whatever order a tool wrote keys in). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Json)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Whether the configuration's last plugin is exactly our entry and no other entry is ours. */
export function hasPlugin(text: string, entry: PluginEntry): boolean {
  try {
    const list = parseJson(text, '');
    if (typeof list['type'] === 'string') return false;
    const plugins = pluginsOf(list, '');
    return plugins.filter((p) => p['type'] === PLUGIN_TYPE).length === 1 && canonical(plugins[plugins.length - 1]) === canonical(entry);
  } catch {
    return false;
  }
}

/** A file of the directory that the runtime loads: a .conf with a type, or a .conflist with plugins. */
function loadable(path: string): boolean {
  try {
    const json = parseJson(readFileSync(path, 'utf8'), path);
    if (path.endsWith('.conflist')) return Array.isArray(json['plugins']) && json['plugins'].length > 0;
    return typeof json['type'] === 'string';
  } catch {
    return false;
  }
}

/** The primary configuration: `name` when given, else the first loadable file in name order (the kubelet's choice). */
export function primaryConfig(dir: string, name?: string): string | undefined {
  if (name !== undefined && name !== '') {
    for (const candidate of [name, name.endsWith('.conf') ? `${name}list` : undefined, name.endsWith('.conflist') ? name.slice(0, -4) : undefined]) {
      if (candidate !== undefined && existsSync(join(dir, candidate))) return join(dir, candidate);
    }
    return undefined;
  }
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter((f) => f.endsWith('.conf') || f.endsWith('.conflist')).sort();
  const first = files.find((f) => loadable(join(dir, f)));
  return first === undefined ? undefined : join(dir, first);
}

/** Write atomically (a file beside it, renamed over it) with the mode given. */
export function atomicWrite(path: string, text: string | Buffer, mode: number): void {
  const tmp = join(path, '..', `.${basename(path)}.tmp-${process.pid}`);
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export interface InstallOptions {
  /** The host's CNI configuration directory (mounted). */
  readonly confDir: string;
  /** The primary configuration's file name; default: the first loadable file. */
  readonly confName?: string | undefined;
  /** The host's CNI bin directories (mounted), where the plugin goes. */
  readonly binDirs: readonly string[];
  /** The plugin executable to copy. */
  readonly plugin: string;
  readonly entry: PluginEntry;
}

export interface Installed {
  /** The configuration file holding our entry. */
  readonly conf: string;
  /** What changed this time ([] when all was in place). */
  readonly changed: readonly string[];
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * Put the plugin and our entry in place; changes only what differs. Throws when there is no
 * primary configuration yet (the node's own CNI has not written it: the caller waits and retries).
 */
export function install(o: InstallOptions): Installed {
  const changed: string[] = [];
  const binary = readFileSync(o.plugin);
  for (const dir of o.binDirs) {
    const target = join(dir, PLUGIN_TYPE);
    if (!existsSync(target) || sha(readFileSync(target)) !== sha(binary) || (statSync(target).mode & 0o777) !== 0o755) {
      atomicWrite(target, binary, 0o755);
      changed.push(target);
    }
  }
  const primary = primaryConfig(o.confDir, o.confName);
  if (primary === undefined) throw new InstallError(`no CNI network configuration in ${o.confDir} yet${o.confName ? ` (waiting for ${o.confName})` : ''}`);
  const text = readFileSync(primary, 'utf8');
  if (hasPlugin(text, o.entry)) return { conf: primary, changed };
  const mode = lstatSync(primary).mode & 0o777;
  const updated = withPlugin(text, o.entry, primary);
  if (primary.endsWith('.conf')) {
    // A list needs the .conflist name; the .conf goes (the runtime would load both otherwise).
    const list = `${primary}list`;
    atomicWrite(list, updated, mode);
    unlinkSync(primary);
    changed.push(list);
    return { conf: list, changed };
  }
  atomicWrite(primary, updated, mode);
  changed.push(primary);
  return { conf: primary, changed };
}

/** Take our entry out of the configuration and the plugin out of the bin directories. */
export function uninstall(o: Pick<InstallOptions, 'confDir' | 'binDirs'>, conf: string | undefined): string[] {
  const removed: string[] = [];
  if (conf !== undefined && existsSync(conf)) {
    const text = readFileSync(conf, 'utf8');
    const without = withoutPlugin(text, conf);
    if (canonical(JSON.parse(without)) !== canonical(JSON.parse(text))) {
      atomicWrite(conf, without, lstatSync(conf).mode & 0o777);
      removed.push(conf);
    }
  }
  for (const dir of o.binDirs) {
    const target = join(dir, PLUGIN_TYPE);
    if (existsSync(target)) {
      rmSync(target);
      removed.push(target);
    }
  }
  return removed;
}
