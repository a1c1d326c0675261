/** `node:os` for the QuickJS entrypoint: the interface addresses, grouped by interface as Node's. */
import { host } from '../host.js';

export function networkInterfaces(): Record<string, { address: string; family: 'IPv4' | 'IPv6'; internal: boolean }[]> {
  const out: Record<string, { address: string; family: 'IPv4' | 'IPv6'; internal: boolean }[]> = {};
  for (const a of host!.interfaces()) (out[a.name] ??= []).push({ address: a.address, family: a.family, internal: a.internal });
  return out;
}
