import type { TraceResult } from '../../../src/trace/index.js';
import type { ListenerSpec } from './pod.js';

/**
 * What the trace-against-the-kernel tests (trace-kernel.test.ts, trace-cases.test.ts) share: the
 * listeners that stand for the proxy and how a verdict is written.
 */

/** Listeners that stand for the proxy, by name: the port they listen on. */
export const PROXY_LISTENERS: Readonly<Record<string, number>> = { inbound: 15006, outbound: 15001, 'agent-dns': 15053, 'agent-dns-tcp': 15053 };

/** The proxy's inbound (15006, REDIRECT or TPROXY as the mode), outbound (15001) and tunnel (15008) listeners. */
export function proxyListeners(mode: 'REDIRECT' | 'TPROXY', ids: { readonly uid: number; readonly gid: number }): ListenerSpec[] {
  return [
    { ns: 'pod', kind: mode === 'REDIRECT' ? 'redirect' : 'tproxy', port: 15006, name: 'inbound', ...ids },
    { ns: 'pod', kind: 'redirect', port: 15001, name: 'outbound', ...ids },
    { ns: 'pod', kind: 'plain', port: 15008, name: 'tunnel', ...ids },
  ];
}

/** A verdict as the tests compare it: `redirect 15001`, `tproxy 15006`, `pass`, `drop`. */
export function verdictText(v: { readonly verdict: TraceResult['verdict']; readonly toPort: number | null }): string {
  return `${v.verdict} ${v.toPort ?? ''}`.trim();
}
