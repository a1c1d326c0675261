import type { Cidr, Family } from '../model/rule.js';

/**
 * Strict address and prefix parsing. Only the characters an address can hold get through, and
 * every address is re-printed in canonical form, so what reaches a rule is always one token.
 */

const V4_OCTET = /^(?:0|[1-9]\d{0,2})$/;

/** Parse dotted-quad IPv4 (no leading zeros, as Go's netip) into 4 bytes, or null. */
export function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!V4_OCTET.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    bytes.push(n);
  }
  return bytes;
}

/** Parse IPv6 text (RFC 4291 forms, optional trailing dotted IPv4, no zone) into 8 groups, or null. */
export function parseIpv6(text: string): number[] | null {
  if (text.length === 0 || text.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  let head = text;
  let tailV4: number[] | null = null;
  if (text.includes('.')) {
    // A dotted IPv4 tail stands for the last two groups; replace it with a placeholder group.
    const lastColon = text.lastIndexOf(':');
    if (lastColon < 0) return null;
    tailV4 = parseIpv4(text.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = text.slice(0, lastColon + 1) + 'v4';
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const toGroups = (s: string): (number | 'v4')[] | null => {
    if (s === '') return [];
    const out: (number | 'v4')[] = [];
    for (const g of s.split(':')) {
      if (g === 'v4') out.push('v4');
      else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else return null;
    }
    return out;
  };
  const left = toGroups(halves[0] ?? '');
  const right = halves.length === 2 ? toGroups(halves[1] ?? '') : [];
  if (left === null || right === null) return null;
  const expand = (gs: (number | 'v4')[]): number[] | null => {
    const out: number[] = [];
    gs.forEach((g, i) => {
      if (g === 'v4') {
        if (i !== gs.length - 1 || tailV4 === null) out.push(-1);
        else out.push(((tailV4[0] ?? 0) << 8) | (tailV4[1] ?? 0), ((tailV4[2] ?? 0) << 8) | (tailV4[3] ?? 0));
      } else out.push(g);
    });
    return out.includes(-1) ? null : out;
  };
  // The v4 placeholder may only be the very last group of the whole address.
  if (left.includes('v4') && (halves.length === 2 || left.indexOf('v4') !== left.length - 1)) return null;
  const l = expand(left);
  const r = expand(right);
  if (l === null || r === null) return null;
  if (halves.length === 1) return l.length === 8 ? l : null;
  if (l.length + r.length > 7) return null;
  return [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
}

/** The first longest run of zero groups (RFC 5952's "::" candidate); length 0 when there is none. */
export function longestZeroRun(groups: readonly number[]): { start: number; length: number } {
  let start = -1;
  let length = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > length) {
      start = i;
      length = j - i;
    }
    i = j;
  }
  return { start, length };
}

/** RFC 5952 text for 8 groups: lower case, longest zero run (length > 1) compressed. */
export function formatIpv6(groups: readonly number[]): string {
  // IPv4-mapped addresses print with a dotted tail, as Go and iproute2 do.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const a = groups[6] ?? 0;
    const b = groups[7] ?? 0;
    return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  const run = longestZeroRun(groups);
  const bestStart = run.length > 1 ? run.start : -1;
  const bestLen = run.length;
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export interface ParsedAddress {
  readonly family: Family;
  readonly text: string;
  readonly loopback: boolean;
  /** IPv4: 4 bytes; IPv6: 8 groups. */
  readonly parts: readonly number[];
}

/** Parse an IPv4 or IPv6 address (no prefix, no zone), returning its canonical text. */
export function parseAddress(text: string): ParsedAddress | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { family: 'ipv4', text: v4.join('.'), loopback: v4[0] === 127, parts: v4 };
  const v6 = parseIpv6(text);
  if (v6 === null) return null;
  const loopback = v6.slice(0, 7).every((g) => g === 0) && v6[7] === 1;
  return { family: 'ipv6', text: formatIpv6(v6), loopback, parts: v6 };
}

/** Whether two addresses are of one family and agree on their first `length` bits (one prefix holds both). */
export function samePrefix(a: ParsedAddress, b: ParsedAddress, length: number): boolean {
  if (a.family !== b.family) return false;
  const width = a.family === 'ipv4' ? 8 : 16;
  for (let i = 0, left = length; left > 0; i++, left -= width) {
    const shift = width - Math.min(width, left);
    if ((a.parts[i] ?? 0) >> shift !== (b.parts[i] ?? 0) >> shift) return false;
  }
  return true;
}

export interface ParsedCidr extends Cidr {
  /** True when the address as written is a loopback address (Istio's HasLoopBackIP). */
  readonly loopback: boolean;
}

/** Parse `address/length`. The address keeps its host bits, as Go's netip.Prefix does. */
export function parseCidr(text: string): ParsedCidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = parseAddress(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (addr === null || !/^(?:0|[1-9]\d{0,2})$/.test(lenText)) return null;
  const prefixLength = Number(lenText);
  if (prefixLength > (addr.family === 'ipv4' ? 32 : 128)) return null;
  return { family: addr.family, address: addr.text, prefixLength, loopback: addr.loopback };
}

export function cidrText(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefixLength}`;
}

export function hostCidr(address: string, family: Family): Cidr {
  return { family, address, prefixLength: family === 'ipv4' ? 32 : 128 };
}
