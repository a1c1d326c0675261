import type { CaptureConfig } from '../config/config.js';
import { Chains, type OptionUse } from '../model/rule.js';
import { because, m, t, use, type RuleSet } from './rules.js';

/** The shared chains: the tunnel port bypass and the two REDIRECT targets (outbound, inbound). */
export function buildCommonChains(rs: RuleSet, c: CaptureConfig): void {
  // The tunnel (HBONE) port is served by the proxy directly: never redirect it.
  rs.append('nat', Chains.INBOUND, [m.proto('tcp'), m.dport(c.inboundTunnelPort)], t.return, because('the tunnel (HBONE) port is never redirected', use('inboundTunnelPort', c.inboundTunnelPort)));
  // Outbound TCP goes to the proxy's outbound listener.
  rs.append('nat', Chains.REDIRECT, [m.proto('tcp')], t.redirect(c.proxyPort), because("captured outbound TCP goes to the proxy's outbound listener", use('proxyPort', c.proxyPort)));
  // Inbound TCP (REDIRECT mode, and app-to-self via the proxy) goes to the inbound listener.
  rs.append('nat', Chains.IN_REDIRECT, [m.proto('tcp')], t.redirect(c.inboundCapturePort), because("captured inbound TCP goes to the proxy's inbound listener", use('inboundCapturePort', c.inboundCapturePort)));
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
  const mode = use('mode', c.mode);
  // Under TPROXY each inbound rule exists because of the mode as well.
  const capture = (purpose: string, ...options: OptionUse[]) => (tproxy ? because(purpose, ...options, mode) : because(purpose, ...options));
  if (tproxy) {
    // ISTIO_DIVERT: packets of connections the proxy already owns get the mark and are accepted,
    // so the fwmark route hands them to the local socket.
    rs.append('mangle', Chains.DIVERT, [], t.setMark(c.tproxyMark), because('packets of connections the proxy already owns get the TPROXY mark', mode, use('tproxyMark', c.tproxyMark)));
    rs.append('mangle', Chains.DIVERT, [], t.accept, because('and are accepted, for the policy route to deliver them to the proxy', mode));
    // ISTIO_TPROXY: new connections go to the inbound port, keeping their original destination.
    // Loopback destinations are excluded: TPROXY to them would loop.
    const toListener = because("new inbound connections go to the proxy's transparent listener, destination kept", mode, use('inboundCapturePort', c.inboundCapturePort), use('tproxyMark', c.tproxyMark));
    rs.each('mangle', Chains.TPROXY, (v) => [m.notDst(v.loopback), m.proto('tcp')], t.tproxy(c.tproxyMark, c.inboundCapturePort), toListener);
  }
  const portsText = ports.kind === 'all' ? '*' : ports.ports.join(',');
  rs.append(table, 'PREROUTING', [m.proto('tcp')], t.jump(Chains.INBOUND), capture('inbound TCP enters ISTIO_INBOUND', use('inboundPorts', portsText)));

  if (ports.kind === 'all') {
    for (const port of c.inboundPortsExclude) {
      rs.append(table, Chains.INBOUND, [m.proto('tcp'), m.dport(port)], t.return, capture('inbound port excluded from capture', use('inboundPortsExclude', port)));
    }
    const all = use('inboundPorts', '*');
    if (tproxy) {
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp'), m.ctstate('RELATED', 'ESTABLISHED')], t.jump(Chains.DIVERT), capture('later packets of captured inbound connections are diverted to the proxy', all));
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp')], t.jump(Chains.TPROXY), capture('inbound TCP to any port is captured', all));
    } else {
      rs.append('nat', Chains.INBOUND, [m.proto('tcp')], t.jump(Chains.IN_REDIRECT), capture('inbound TCP to any port is captured', all));
    }
    return;
  }
  for (const port of ports.ports) {
    const listed = use('inboundPorts', port);
    if (tproxy) {
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp'), m.dport(port), m.ctstate('RELATED', 'ESTABLISHED')], t.jump(Chains.DIVERT), capture('later packets of captured inbound connections are diverted to the proxy', listed));
      rs.append('mangle', Chains.INBOUND, [m.proto('tcp'), m.dport(port)], t.jump(Chains.TPROXY), capture('inbound port captured', listed));
    } else {
      rs.append('nat', Chains.INBOUND, [m.proto('tcp'), m.dport(port)], t.jump(Chains.IN_REDIRECT), capture('inbound port captured', listed));
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
  const mode = use('mode', c.mode);
  const marked = use('tproxyMark', mark);
  // Keep the mark Envoy's original_src sets as the connection's mark, for the replies.
  rs.append('mangle', 'PREROUTING', [m.proto('tcp'), m.mark(mark)], t.connmarkSave, because("the TPROXY mark is kept as the connection's mark, for the replies", mode, marked));
  // Already marked proxy-to-app traffic on lo is left alone.
  rs.append('mangle', 'OUTPUT', [m.proto('tcp'), m.out('lo'), m.mark(mark)], t.return, because('proxy-to-app traffic already marked is left alone', mode, marked));
  // Proxy traffic to the pod's own address (app -> VIP -> proxy -> proxy inbound -> app) gets
  // OUTBOUND_MARK 1338, so ISTIO_INBOUND can tell it from app-to-self traffic on lo.
  const toSelf = "the proxy's traffic to the pod's own address is marked 1338, to tell it from the app's";
  for (const uid of c.proxyUids) {
    rs.each('mangle', 'OUTPUT', (v) => [m.notDst(v.loopback), m.proto('tcp'), m.out('lo'), m.uid(uid)], t.setMark(OUTBOUND_MARK), because(toSelf, mode, use('proxyUids', uid)));
  }
  for (const gid of c.proxyGids) {
    rs.each('mangle', 'OUTPUT', (v) => [m.notDst(v.loopback), m.proto('tcp'), m.out('lo'), m.gid(gid)], t.setMark(OUTBOUND_MARK), because(toSelf, mode, use('proxyGids', gid)));
  }
  // Replies of TPROXY'd connections carry the mark again, so they follow the policy route.
  rs.append('mangle', 'OUTPUT', [m.proto('tcp'), m.connmark(mark)], t.connmarkRestore, because('replies of diverted connections carry the TPROXY mark again, for the policy route', mode, marked));
  // Never divert what is already diverted (prevents loops).
  rs.insert('mangle', Chains.INBOUND, 1, [m.proto('tcp'), m.mark(mark)], t.return, because('packets already diverted are never diverted again', mode, marked));
  // The proxy's passthrough connections to the app come from 127.0.0.6 / ::6 on lo.
  const passthrough = because("the proxy's passthrough connections to the app (from 127.0.0.6, ::6 on lo) are not captured", mode);
  rs.insertTo('ipv4', 'mangle', Chains.INBOUND, 2, [m.proto('tcp'), m.src(PASSTHROUGH.ipv4), m.in('lo')], t.return, passthrough);
  rs.insertTo('ipv6', 'mangle', Chains.INBOUND, 2, [m.proto('tcp'), m.src(PASSTHROUGH.ipv6), m.in('lo')], t.return, passthrough);
  // App-to-self traffic on lo without the 1338 mark is not inbound traffic.
  rs.insert('mangle', Chains.INBOUND, 3, [m.proto('tcp'), m.in('lo'), m.notMark(OUTBOUND_MARK)], t.return, because("the app's traffic to itself on lo is not inbound traffic", mode));
}

/** Istio's mark for proxy-originated traffic to the pod itself. */
export const OUTBOUND_MARK = 1338;

export const PASSTHROUGH = {
  ipv4: { family: 'ipv4', address: '127.0.0.6', prefixLength: 32 },
  ipv6: { family: 'ipv6', address: '::6', prefixLength: 128 },
} as const;
