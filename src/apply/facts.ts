import { ipv6FromAddresses, type InterfaceAddress } from '../config/host.js';
import { PASSTHROUGH } from '../build/inbound.js';
import type { Fact, Kernel } from '../platform/platform.js';

/*
 * Facts about the target namespace, read in the target (whoever calls from wherever: inside the
 * pod or from the node, the same flags give the same plan), each with where it was read.
 */

/**
 * IPv6 as Istio decides it when --enable-ipv6 is not given: on the target's interface addresses
 * (Kernel.addresses), less the passthrough source ::6 on lo, which a run of ours adds (it says
 * nothing about the pod, and a rerun must decide as the first run did).
 */
export function ipv6Fact(addresses: Fact<readonly InterfaceAddress[]>, dualStack: boolean): Fact<boolean> {
  const pod = addresses.value.filter((a) => !(a.loopback === true && a.address === PASSTHROUGH.ipv6.address));
  return { value: ipv6FromAddresses(pod, dualStack), source: `${pod.length} interface addresses ${addresses.source}` };
}

/** IPv6 on the target's lo: off when its disable_ipv6 is 1, or when the namespace has no IPv6 at all. */
export async function loopbackIpv6Fact(kernel: Kernel): Promise<Fact<boolean>> {
  const f = await kernel.netFile('/proc/sys/net/ipv6/conf/lo/disable_ipv6');
  return { value: f.value !== undefined && f.value.trim() !== '1', source: f.source };
}

/** Where legacy iptables tables are listed once they exist (a missing file: its module never loaded there). */
export const LEGACY_TABLE_FILES = ['/proc/net/ip_tables_names', '/proc/net/ip6_tables_names'] as const;

/**
 * Whether legacy iptables tables exist, from LEGACY_TABLE_FILES' contents (undefined: missing);
 * undefined, cannot tell, when both are missing and so is /proc/net itself.
 */
export function legacyFrom(v4: string | undefined, v6: string | undefined, hasProcNet: () => boolean): boolean | undefined {
  if (v4 === undefined && v6 === undefined && !hasProcNet()) return undefined;
  return (v4 ?? '').trim() !== '' || (v6 ?? '').trim() !== '';
}

/** Whether the target holds legacy iptables tables; undefined: cannot tell (not readable, or no /proc/net). */
export async function legacyTablesFact(kernel: Kernel): Promise<Fact<boolean | undefined>> {
  try {
    const [v4, v6] = await Promise.all([kernel.netFile(LEGACY_TABLE_FILES[0]), kernel.netFile(LEGACY_TABLE_FILES[1])]);
    const dev = v4.value === undefined && v6.value === undefined ? (await kernel.netFile('/proc/net/dev')).value : '';
    return { value: legacyFrom(v4.value, v6.value, () => dev !== undefined), source: v4.source.replace('ip_tables_names', 'ip{,6}_tables_names') };
  } catch (err) {
    return { value: undefined, source: err instanceof Error ? err.message : String(err) };
  }
}
