import type { Endpoint, Flow, TraceResult } from './types.js';

/** What trace says about a result in words; the text output and the pictures say the same. */

/** `10.0.0.1:80`, `[fd00::1]:80`. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

const endpoint = (e: Endpoint): string => hostPort(e.address, e.port);

/** The flow as the command line writes it, with its defaults filled in: `outbound tcp 10.0.0.2:40000 -> 1.2.3.4:443 uid=1000 state=new`. */
export function describeFlow(f: Flow): string {
  const extra: string[] = [];
  if (f.uid !== undefined) extra.push(`uid=${f.uid}`);
  if (f.gid !== undefined) extra.push(`gid=${f.gid}`);
  if (f.mark !== undefined) extra.push(`mark=${f.mark}`);
  if (f.inInterface !== undefined) extra.push(`in=${f.inInterface}`);
  if (f.outInterface !== undefined) extra.push(`out=${f.outInterface}`);
  extra.push(`state=${(f.state ?? 'NEW').toLowerCase()}`);
  return [f.direction, f.protocol, hostPort(f.src, f.sport), '->', hostPort(f.dst, f.dport), ...extra].join(' ');
}

/** `redirect to port 15001`, `tproxy to port 15006`, `pass (not captured)`, `drop`. */
export function verdictWords(r: TraceResult): string {
  switch (r.verdict) {
    case 'redirect':
      return `redirect to port ${r.toPort}`;
    case 'tproxy':
      return `tproxy to port ${r.toPort}`;
    case 'pass':
      return 'pass (not captured)';
    case 'drop':
      return 'drop';
  }
}

/** The verdict line: the verdict, then what decided it. */
export function verdictLine(flow: Flow, r: TraceResult): string {
  const established = flow.state === 'ESTABLISHED' ? " (as the connection's first packet decided)" : '';
  return `verdict: ${verdictWords(r)}${established}: ${r.reason.text}`;
}

/**
 * Where the connection lands and what each end sees: under REDIRECT the rewritten destination
 * (the proxy reads the original with SO_ORIGINAL_DST), under TPROXY the original destination and
 * the client's address, both kept. Empty for a dropped packet.
 */
export function landingLines(flow: Flow, r: TraceResult): string[] {
  const l = r.landing;
  if (l === null) return [];
  const original = hostPort(flow.dst, flow.dport);
  switch (r.verdict) {
    case 'redirect': {
      const lines = [`lands on: ${endpoint(l.local)} from ${endpoint(l.peer)} (REDIRECT rewrote the destination; the proxy reads the original, ${original}, with SO_ORIGINAL_DST)`];
      if (flow.direction === 'outbound') lines.push(`the app sees: its peer ${original} (replies are rewritten back)`);
      else lines.push("the app sees: the proxy's own connection (Istio's inbound passthrough binds 127.0.0.6), not the client's address");
      return lines;
    }
    case 'tproxy':
      return [
        `lands on: ${endpoint(l.local)} from ${endpoint(l.peer)} (TPROXY keeps the destination and the client's source address)`,
        `the app sees: the client's address ${l.peer.address} (the proxy connects from it, with original_src and the TPROXY mark)`,
      ];
    case 'pass':
      return [`${flow.direction === 'inbound' ? 'delivered to' : 'sent to'}: ${endpoint(l.local)} from ${endpoint(l.peer)}, unchanged`];
    case 'drop':
      return [];
  }
}
