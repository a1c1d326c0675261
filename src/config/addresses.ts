import { networkInterfaces } from 'node:os';
import { parseAddress } from './net.js';

/* The host's addresses and Istio's rule for IPv6 from them (apart from host.ts, which also reads
   passwd and resolv.conf, so that the entrypoint's prelude can use them without the rest). */

export interface InterfaceAddress {
  readonly address: string;
  readonly family: 'IPv4' | 'IPv6';
}

/**
 * Istio's rule: walk the host's addresses, skipping loopback and link-local ones. Without dual
 * stack the first such address decides; with dual stack, IPv6 is on if any such address is IPv6.
 */
export function ipv6FromAddresses(addresses: readonly InterfaceAddress[], dualStack: boolean): boolean {
  let sawV6 = false;
  for (const { address } of addresses) {
    const a = parseAddress(address.split('%')[0] ?? '');
    if (a === null || a.loopback) continue;
    const p = a.parts;
    const linkLocal =
      a.family === 'ipv4'
        ? p[0] === 169 && p[1] === 254
        : ((p[0] ?? 0) & 0xffc0) === 0xfe80 || ((p[0] ?? 0) & 0xff0f) === 0xff02;
    if (linkLocal) continue;
    const isV6 = a.family === 'ipv6';
    if (!dualStack) return isV6;
    sawV6 ||= isV6;
  }
  return sawV6;
}

/** The host's addresses, interface by interface, in the order the system lists them. */
export function hostAddresses(): InterfaceAddress[] {
  const list: InterfaceAddress[] = [];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) list.push({ address: a.address, family: a.family });
  }
  return list;
}

