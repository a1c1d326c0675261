import { existsSync, readFileSync } from 'node:fs';
import type { IptablesBackend } from '../config/values.js';

/** The iptables binaries of one backend, per family. */
export interface Backend {
  readonly name: IptablesBackend | 'default';
  readonly restore: { readonly ipv4: string; readonly ipv6: string };
  readonly save: { readonly ipv4: string; readonly ipv6: string };
}

export function backendBinaries(name: IptablesBackend | 'default'): Backend {
  const suffix = name === 'default' ? '' : `-${name}`;
  return {
    name,
    restore: { ipv4: `iptables${suffix}-restore`, ipv6: `ip6tables${suffix}-restore` },
    save: { ipv4: `iptables${suffix}-save`, ipv6: `ip6tables${suffix}-save` },
  };
}

/**
 * The backend without running a program, where that is certain: a forced one, or nft when this
 * process's namespace has no legacy tables at all (legacy tables are listed in
 * /proc/net/ip_tables_names and ip6_tables_names once they exist). Otherwise undefined.
 */
export function quickBackend(
  forced: IptablesBackend | undefined,
  sameNamespace: boolean,
  readProc: (path: string) => string | undefined,
): { backend: Backend; evidence: string } | undefined {
  if (forced !== undefined) return { backend: backendBinaries(forced), evidence: 'forced by --force-iptables-binary' };
  if (!sameNamespace) return undefined;
  const legacy = ['/proc/net/ip_tables_names', '/proc/net/ip6_tables_names'].map(readProc);
  if (legacy.some((t) => t === undefined || t.trim() !== '')) return undefined;
  return { backend: backendBinaries('nft'), evidence: 'no legacy tables in this namespace; nft preferred' };
}

/** Read a /proc/net file; a missing one reads as empty (its module never loaded), unless /proc is absent. */
export function readProcNet(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    // Only "no such file" means no legacy tables; unreadable (not root) means "don't know".
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/net/dev') ? '' : undefined;
  }
}
