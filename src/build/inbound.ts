import type { CaptureConfig } from '../config/config.js';
import { Chains } from '../model/rule.js';
import { m, t, type RuleSet } from './rules.js';

/** The shared chains: the tunnel port bypass and the two REDIRECT targets (outbound, inbound). */
export function buildCommonChains(rs: RuleSet, c: CaptureConfig): void {
  // The tunnel (HBONE) port is served by the proxy directly: never redirect it.
  rs.append('nat', Chains.INBOUND, [m.proto('tcp'), m.dport(c.inboundTunnelPort)], t.return);
  // Outbound TCP goes to the proxy's outbound listener.
  rs.append('nat', Chains.REDIRECT, [m.proto('tcp')], t.redirect(c.proxyPort));
  // Inbound TCP (REDIRECT mode, and app-to-self via the proxy) goes to the inbound listener.
  rs.append('nat', Chains.IN_REDIRECT, [m.proto('tcp')], t.redirect(c.inboundCapturePort));
}

/**
 * Inbound capture. REDIRECT rewrites the destination in nat; TPROXY keeps it and marks packets in
 * mangle so the policy route delivers them to the proxy's transparent listener.
 */
export function buildInbound(rs: RuleSet, c: CaptureConfig): void {
  const ports = c.inboundPorts;
  if (ports.kind === 'none') return;
  const tproxy = c.mode === 'TPROXY';
  const table = tproxy ? 'mangle' : 'nat';
  if (tproxy) {
    // ISTIO_DIVERT: packets of connections the proxy already owns get the mark and are accepted,
    // so the fwmark route hands them to the local socket.
    rs.append('mangle', Chains.DIVERT, [], t.setMark(c.tproxyMark));
    rs.append('mangle', Chains.DIVERT, [], t.accept);
    // ISTIO_TPROXY: new connections go to the inbound port, keeping their original destination.
    // Loopback destinations are excluded: TPROXY to them would loop.
    rs.each('mangle', Chains.TPROXY, (v) => [m.notDst(v.loopback), m.proto('tcp')], t.tproxy(c.tproxyMark, c.inboundCapturePort));
  }
  rs.append(table, 'PREROUTING', [m.proto('tcp')], t.jump(Chains.INBOUND));

  if (ports.kind === 'all') {
    for (const port of c.inboundPortsExclude) {
      rs.append(table, Chains.INBOUND, [m.proto('tcp'), m.dport(port)], t.return);
    }
    if (tproxy) {
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp'), m.ctstate('RELATED', 'ESTABLISHED')], t.jump(Chains.DIVERT));
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp')], t.jump(Chains.TPROXY));
    } else {
      rs.append('nat', Chains.INBOUND, [m.proto('tcp')], t.jump(Chains.IN_REDIRECT));
    }
    return;
  }
  for (const port of ports.ports) {
    if (tproxy) {
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp'), m.dport(port), m.ctstate('RELATED', 'ESTABLISHED')], t.jump(Chains.DIVERT));
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp'), m.dport(port)], t.jump(Chains.TPROXY));
    } else {
      rs.append('nat', Chains.INBOUND, [m.proto('tcp'), m.dport(port)], t.jump(Chains.IN_REDIRECT));
    }
  }
}

/**
 * TPROXY's mangle rules for connections the proxy makes to the app, and the guards that keep
 * them from being captured again. Added last, as Istio does; the guards are inserted at the top
 * of ISTIO_INBOUND.
 */
export function buildTproxyMarks(rs: RuleSet, c: CaptureConfig): void {
  if (c.mode !== 'TPROXY') return;
  const mark = c.tproxyMark;
  // Keep the mark Envoy's original_src sets as the connection's mark, for the replies.
  rs.append('mangle', 'PREROUTING', [m.proto('tcp'), m.mark(mark)], t.connmarkSave);
  // Already marked proxy-to-app traffic on lo is left alone.
  rs.append('mangle', 'OUTPUT', [m.proto('tcp'), m.out('lo'), m.mark(mark)], t.return);
  // Proxy traffic to the pod's own address (app -> VIP -> proxy -> proxy inbound -> app) gets
  // OUTBOUND_MARK 1338, so ISTIO_INBOUND can tell it from app-to-self traffic on lo.
  for (const uid of c.proxyUids) {
    rs.each('mangle', 'OUTPUT', (v) => [m.notDst(v.loopback), m.proto('tcp'), m.out('lo'), m.uid(uid)], t.setMark(OUTBOUND_MARK));
  }
  for (const gid of c.proxyGids) {
    rs.each('mangle', 'OUTPUT', (v) => [m.notDst(v.loopback), m.proto('tcp'), m.out('lo'), m.gid(gid)], t.setMark(OUTBOUND_MARK));
  }
  // Replies of TPROXY'd connections carry the mark again, so they follow the policy route.
  rs.append('mangle', 'OUTPUT', [m.proto('tcp'), m.connmark(mark)], t.connmarkRestore);
  // Never divert what is already diverted (prevents loops).
  rs.insert('mangle', Chains.INBOUND, 1, [m.proto('tcp'), m.mark(mark)], t.return);
  // The proxy's passthrough connections to the app come from 127.0.0.6 / ::6 on lo.
  rs.insertTo('ipv4', 'mangle', Chains.INBOUND, 2, [m.proto('tcp'), m.src(PASSTHROUGH.ipv4), m.in('lo')], t.return);
  rs.insertTo('ipv6', 'mangle', Chains.INBOUND, 2, [m.proto('tcp'), m.src(PASSTHROUGH.ipv6), m.in('lo')], t.return);
  // App-to-self traffic on lo without the 1338 mark is not inbound traffic.
  rs.insert('mangle', Chains.INBOUND, 3, [m.proto('tcp'), m.in('lo'), m.notMark(OUTBOUND_MARK)], t.return);
}

/** Istio's mark for proxy-originated traffic to the pod itself. */
export const OUTBOUND_MARK = 1338;

export const PASSTHROUGH = {
  ipv4: { family: 'ipv4', address: '127.0.0.6', prefixLength: 32 },
  ipv6: { family: 'ipv6', address: '::6', prefixLength: 128 },
} as const;
