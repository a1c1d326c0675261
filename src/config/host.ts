import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { parseAddress, type ParsedAddress } from './net.js';
import { splitDnsServers, type DnsServers } from './values.js';

/**
 * Facts about the host that Istio derives instead of taking from flags. The builder never reads
 * the host: these are looked up once, at the edge, and only when no flag gives the value.
 */
export interface HostFacts {
  /** The proxy uid when -u is not given: the uid of $ENVOY_USER (default istio-proxy), else 1337. */
  proxyUid(): number;
  /** Nameservers for DNS capture when --dns-servers is not given. */
  dnsServers(): DnsServers;
  /** Whether to emit IPv6 rules when --enable-ipv6 is not given. */
  ipv6Enabled(dualStack: boolean): boolean;
  /** Whether lo has IPv6 (its disable_ipv6 is not 1), asked when IPv6 is on; absent: taken as on. */
  loopbackIpv6?(): boolean;
}

export const DEFAULT_PROXY_UID = 1337;

/** Find a name's id in passwd- or group-format text (name:x:id:...). */
export function idFromDatabase(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields[2] !== undefined && /^[0-9]+$/.test(fields[2])) return Number(fields[2]);
  }
  return undefined;
}

/** Nameservers from resolv.conf text; entries that are not plain addresses (e.g. with a zone) are skipped. */
export function nameserversFromResolvConf(text: string): { servers: DnsServers; skipped: string[] } {
  const parsed: ParsedAddress[] = [];
  const skipped: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== 'nameserver' || fields[1] === undefined) continue;
    const a = parseAddress(fields[1]);
    if (a === null) skipped.push(fields[1]);
    else parsed.push(a);
  }
  return { servers: splitDnsServers(parsed), skipped };
}

/** A passwd-format file's text: empty when it does not exist; any other failure to read it throws. */
function readDatabase(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new Error(`cannot read ${file} for ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Read the real host, lazily, each fact at most once. */
export function detectHost(env: Readonly<Record<string, string | undefined>> = process.env, log: (msg: string) => void = () => {}): HostFacts {
  return {
    proxyUid() {
      const user = env['ENVOY_USER'] || 'istio-proxy';
      // No /etc/passwd: no such user (Istio's lookup then defaults too). Any other failure to
      // read it is an error: guessing the uid would capture the proxy's own traffic.
      const uid = idFromDatabase(readDatabase('/etc/passwd', 'the proxy uid (set -u/--proxy-uid to avoid it)'), user);
      log(uid === undefined ? `user ${user} not found; proxy uid defaults to ${DEFAULT_PROXY_UID}` : `proxy uid ${uid} (user ${user})`);
      return uid ?? DEFAULT_PROXY_UID;
    },
    dnsServers() {
      let text: string;
      try {
        text = readFileSync('/etc/resolv.conf', 'utf8');
      } catch (cause) {
        throw new Error(`failed to read /etc/resolv.conf for DNS capture (set --dns-servers to avoid it): ${String(cause)}`, { cause });
      }
      const { servers, skipped } = nameserversFromResolvConf(text);
      if (skipped.length > 0) log(`skipping nameservers that are not plain addresses: ${skipped.join(', ')}`);
      log(`DNS servers from /etc/resolv.conf: ${[...servers.ipv4, ...servers.ipv6].join(', ') || 'none'}`);
      return servers;
    },
    ipv6Enabled(dualStack) {
      let addresses: ReturnType<typeof hostAddresses>;
      try {
        addresses = hostAddresses();
      } catch (cause) {
        // Never "no addresses": that would quietly plan IPv4 only.
        throw new Error(`cannot list the host's interface addresses to decide IPv6 (set --enable-ipv6 to avoid it): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
      }
      const on = ipv6FromAddresses(addresses, dualStack);
      log(`IPv6 ${on ? 'enabled' : 'disabled'} (detected from host addresses${dualStack ? ', dual stack' : ''})`);
      return on;
    },
  };
}

/** Host facts fixed in advance: for reproducible dry runs and for library users. */
export function fixedHost(facts: { proxyUid?: number; dnsServers?: DnsServers; ipv6?: boolean } = {}): HostFacts {
  return {
    proxyUid: () => facts.proxyUid ?? DEFAULT_PROXY_UID,
    dnsServers: () => facts.dnsServers ?? { ipv4: [], ipv6: [] },
    ipv6Enabled: () => facts.ipv6 ?? false,
  };
}

/** Resolve user and group names as iptables will when the rules load: from /etc/passwd and /etc/group. */
export function ownerResolver(): { uid(name: string): number | undefined; gid(name: string): number | undefined } {
  const cache = new Map<string, string>();
  const read = (file: string): string => {
    let text = cache.get(file);
    if (text === undefined) {
      text = readDatabase(file, 'user and group names');
      cache.set(file, text);
    }
    return text;
  };
  return {
    uid: (name) => idFromDatabase(read('/etc/passwd'), name),
    gid: (name) => idFromDatabase(read('/etc/group'), name),
  };
}

export interface InterfaceAddress {
  readonly address: string;
  readonly family: 'IPv4' | 'IPv6';
  /** On a loopback interface (lo); absent: not known. */
  readonly loopback?: boolean;
}

/**
 * Istio's rule: walk the host's addresses, skipping loopback and link-local ones. Without dual
 * stack the first such address decides; with dual stack, IPv6 is on if any such address is IPv6.
 * Istio walks Go's net.InterfaceAddrs(), which on Linux is the kernel's address dump for all
 * families: every IPv4 address (interface by interface) before any IPv6 one. So the addresses are
 * walked in that order whatever order they are listed in (each family's own order kept): a pod
 * whose first interface has only IPv6 and whose second has IPv4 is IPv4 to Istio without dual stack.
 */
export function ipv6FromAddresses(addresses: readonly InterfaceAddress[], dualStack: boolean): boolean {
  const usable = addresses.map(({ address }) => usableAddress(address)).filter((a) => a !== null);
  const walked = [...usable.filter((a) => a.family === 'ipv4'), ...usable.filter((a) => a.family === 'ipv6')];
  if (!dualStack) return walked[0]?.family === 'ipv6';
  return walked.some((a) => a.family === 'ipv6');
}

/** An address Istio counts as the pod's (not loopback, not link-local), parsed; null otherwise. */
export function usableAddress(address: string): ParsedAddress | null {
  const a = parseAddress(address.split('%')[0] ?? '');
  if (a === null || a.loopback) return null;
  const p = a.parts;
  const linkLocal = a.family === 'ipv4' ? p[0] === 169 && p[1] === 254 : ((p[0] ?? 0) & 0xffc0) === 0xfe80 || ((p[0] ?? 0) & 0xff0f) === 0xff02;
  return linkLocal ? null : a;
}

/** The host's addresses, interface by interface, in the order the system lists them. */
export function hostAddresses(): InterfaceAddress[] {
  const list: InterfaceAddress[] = [];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) list.push({ address: a.address, family: a.family, loopback: a.internal });
  }
  return list;
}

