import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { dryRunJson } from '../../support/cli.js';
import { ADDRS, APP_GID, APP_UID, PROXY_GID, PROXY_UID, createPod, withPod, type Backend, type Pod } from './pod.js';

/**
 * Real traffic through the rules of a dry run: each test builds a pod and a peer namespace, loads
 * the payloads with iptables-restore --noflush, runs the ip commands, starts python listeners in
 * the roles of the proxy, the app and remote servers, and checks who answers each connection.
 */

// The realistic sidecar (README's dry-run:sidecar) with the interception mode and IPv6 switch added.
const SIDECAR = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const sidecar = (mode: 'REDIRECT' | 'TPROXY', ipv6: boolean, extra: readonly string[] = []) =>
  dryRunJson([...SIDECAR, '-m', mode, `--enable-ipv6=${ipv6}`, ...extra]);

/**
 * How the rules get into the pod: the dry-run payloads fed to iptables-restore on either backend,
 * or istio-iptables itself applying them, as the init container does (the compiled entrypoint run
 * inside the pod namespace), with iptables or with --native-nftables.
 */
type How = Backend | 'entrypoint' | 'entrypoint --native-nftables';
const BACKENDS: readonly How[] = ['nft', 'legacy', 'entrypoint', 'entrypoint --native-nftables'];
const ENTRYPOINT = fileURLToPath(new URL('../../../dist/entrypoint/istio-iptables', import.meta.url));

/** Program the pod with the sidecar config, the way `how` says; returns the dry-run view of it. */
async function program(pod: Pod, mode: 'REDIRECT' | 'TPROXY', ipv6: boolean, how: How = 'nft', extra: readonly string[] = []) {
  const payloads = await sidecar(mode, ipv6, extra);
  if (how === 'nft' || how === 'legacy') {
    await pod.applyPayloads(payloads, how);
    return payloads;
  }
  const args = [...SIDECAR, '-m', mode, `--enable-ipv6=${ipv6}`, ...extra, ...(how === 'entrypoint' ? [] : ['--native-nftables'])];
  const r = await execa('ip', ['netns', 'exec', pod.ns.pod, ENTRYPOINT, ...args], { reject: false, timeout: 30_000 });
  if (r.exitCode !== 0) throw new Error(`istio-iptables failed (${r.exitCode}): ${r.stderr}`);
  return payloads;
}
type Fam = 'v4' | 'v6';
const LOOPBACK = { v4: '127.0.0.1', v6: '::1' } as const;
/** Source of the proxy's inbound passthrough connections under REDIRECT (127.0.0.6, ::6 on lo). */
const PASSTHROUGH_SRC = { v4: '127.0.0.6', v6: '::6' } as const;
const IP_FAMILY_FLAG = { v4: '-4', v6: '-6' } as const;

/**
 * The pod's sockets with the identities a sidecar pod has: Envoy as 1337:1337 under REDIRECT and,
 * as Istio's injection template runs it under TPROXY, as 0:1337 with NET_ADMIN; the app as 1000.
 */
async function startSidecarPod(pod: Pod, mode: 'REDIRECT' | 'TPROXY'): Promise<void> {
  const proxy = mode === 'REDIRECT' ? { uid: PROXY_UID, gid: PROXY_GID } : { uid: 0, gid: PROXY_GID };
  await pod.startListener({ ns: 'pod', kind: mode === 'REDIRECT' ? 'redirect' : 'tproxy', port: 15006, name: 'inbound', ...proxy });
  await pod.startListener({ ns: 'pod', kind: 'redirect', port: 15001, name: 'outbound', ...proxy });
  await pod.startListener({ ns: 'pod', kind: 'plain', port: 15008, name: 'tunnel', ...proxy });
  await pod.startListener({ ns: 'pod', kind: 'plain', port: 15090, name: 'stats', ...proxy });
  await pod.startListener({ ns: 'pod', kind: 'plain', port: 8080, name: 'app', uid: APP_UID, gid: APP_GID });
  await pod.startListener({ ns: 'peer', kind: 'plain', port: 80, name: 'peer-80' });
}

const app = { uid: APP_UID, gid: APP_GID } as const;
const proxyRedirect = { uid: PROXY_UID, gid: PROXY_GID } as const;
const proxyTproxy = { uid: 0, gid: PROXY_GID } as const;

describe('the harness itself', () => {
  it('without rules traffic goes where it is sent, ids and sources are as asked, close() removes everything', async () => {
    const pod = await createPod({ ipv6: true, secondNic: true });
    const pids: number[] = [];
    try {
      pids.push((await pod.startListener({ ns: 'pod', kind: 'redirect', port: 8080, name: 'app' })).pid);
      pids.push((await pod.startListener({ ns: 'pod', kind: 'udp', port: 5353, name: 'pod-udp', uid: APP_UID, gid: APP_GID })).pid);
      pids.push((await pod.startListener({ ns: 'peer', kind: 'plain', port: 80, name: 'peer-80' })).pid);
      for (const f of ['v4', 'v6'] as const) {
        let r = await pod.connect({ from: 'peer', dst: ADDRS.pod[f], port: 8080 });
        // No NAT: the server sees the client's own address; with no rules loaded the namespace has
        // no conntrack, so SO_ORIGINAL_DST has nothing to report.
        expect(r).toMatchObject({ who: 'app', localPort: 8080, local: [ADDRS.pod[f], 8080], peer: r.clientLocal, origDst: null, clientUid: 0 });
        r = await pod.connect({ from: 'peer', dst: ADDRS.pod2[f], port: 8080 });
        expect(r).toMatchObject({ who: 'app', local: [ADDRS.pod2[f], 8080], peer: [ADDRS.peer2[f], r.clientLocal?.[1]] });
        r = await pod.connect({ from: 'pod', dst: ADDRS.peer[f], port: 80, ...app });
        expect(r).toMatchObject({ who: 'peer-80', peer: [ADDRS.pod[f], r.clientLocal?.[1]], clientUid: APP_UID, clientGid: APP_GID });
        r = await pod.connect({ from: 'pod', dst: ADDRS.peer[f], port: 80, uid: PROXY_UID, gid: PROXY_GID, mark: 1337, transparent: true, src: ADDRS.pod2[f] });
        expect(r).toMatchObject({ who: 'peer-80', peer: [ADDRS.pod2[f], r.clientLocal?.[1]], clientUid: PROXY_UID, clientGid: PROXY_GID });
        r = await pod.connect({ from: 'peer', dst: ADDRS.pod[f], port: 9 });
        expect(r).toEqual({ error: 'refused' });
        r = await pod.udp({ from: 'peer', dst: ADDRS.pod[f], port: 5353 });
        expect(r).toMatchObject({ who: 'pod-udp', local: [ADDRS.pod[f], 5353], from: [ADDRS.pod[f], 5353] });
        r = await pod.udp({ from: 'pod', dst: ADDRS.peer[f], port: 5353, timeout: 0.5 });
        expect(r).toEqual({ error: 'timeout' });
      }
    } finally {
      await pod.close();
    }
    const { stdout } = await execa('ip', ['netns', 'list']);
    expect(stdout).not.toContain(pod.ns.pod);
    expect(stdout).not.toContain(pod.ns.peer);
    for (const pid of pids) expect(() => process.kill(pid, 0), `listener ${pid} still running`).toThrow();
    await pod.close(); // a second close is harmless
  });
});

describe.each(BACKENDS)('REDIRECT sidecar, %s backend', (backend) => {
  it.each([true, false])('--enable-ipv6=%s: inbound to 15006, outbound to 15001, exclusions answered by their own listeners', async (ipv6) => {
    await withPod({ ipv6: true }, async (pod) => {
      await program(pod, 'REDIRECT', ipv6, backend);
      await startSidecarPod(pod, 'REDIRECT');
      const captured: Fam[] = ipv6 ? ['v4', 'v6'] : ['v4'];
      for (const f of captured) {
        const podIp = ADDRS.pod[f];
        const peerIp = ADDRS.peer[f];
        // Inbound to an app port: the inbound listener, original destination kept, client not SNATed.
        let r = await pod.connect({ from: 'peer', dst: podIp, port: 8080 });
        expect(r).toMatchObject({ who: 'inbound', localPort: 15006, origDst: [podIp, 8080], peer: r.clientLocal });
        // Excluded inbound port (-d) and the tunnel port: their own listeners.
        r = await pod.connect({ from: 'peer', dst: podIp, port: 15090 });
        expect(r).toMatchObject({ who: 'stats', local: [podIp, 15090] });
        r = await pod.connect({ from: 'peer', dst: podIp, port: 15008 });
        expect(r).toMatchObject({ who: 'tunnel', local: [podIp, 15008] });
        // Outbound from the app: the outbound listener, original destination kept.
        r = await pod.connect({ from: 'pod', dst: peerIp, port: 80, ...app });
        expect(r).toMatchObject({ who: 'outbound', localPort: 15001, origDst: [peerIp, 80], clientUid: APP_UID });
        // Outbound from the proxy's uid: straight to the peer.
        r = await pod.connect({ from: 'pod', dst: peerIp, port: 80, ...proxyRedirect });
        expect(r).toMatchObject({ who: 'peer-80', peer: [podIp, r.clientLocal?.[1]], clientUid: PROXY_UID });
        // Localhost is not captured.
        r = await pod.connect({ from: 'pod', dst: LOOPBACK[f], port: 8080, ...app });
        expect(r).toMatchObject({ who: 'app', local: [LOOPBACK[f], 8080] });
        // The proxy's inbound passthrough (uid 1337 from 127.0.0.6 / ::6) reaches the app...
        r = await pod.connect({ from: 'pod', dst: podIp, port: 8080, ...proxyRedirect, src: PASSTHROUGH_SRC[f] });
        expect(r).toMatchObject({ who: 'app', local: [podIp, 8080], peer: [PASSTHROUGH_SRC[f], r.clientLocal?.[1]] });
        // ...while the proxy calling its own pod IP from any other source goes back to inbound.
        r = await pod.connect({ from: 'pod', dst: podIp, port: 8080, ...proxyRedirect });
        expect(r).toMatchObject({ who: 'inbound', localPort: 15006, origDst: [podIp, 8080] });
      }
      if (!ipv6 && backend !== 'entrypoint --native-nftables') {
        // IPv6 off: the pod's IPv6 traffic is left alone in both directions.
        let r = await pod.connect({ from: 'peer', dst: ADDRS.pod.v6, port: 8080 });
        expect(r).toMatchObject({ who: 'app', local: [ADDRS.pod.v6, 8080] });
        r = await pod.connect({ from: 'pod', dst: ADDRS.peer.v6, port: 80, ...app });
        expect(r).toMatchObject({ who: 'peer-80' });
      }
      if (!ipv6 && backend === 'entrypoint --native-nftables') {
        // Istio's nft layout quirk, reproduced: its inet tables hold the family-free rules for both
        // families, so with IPv6 "off" IPv6 is still captured (only the v4 address rules exist).
        let r = await pod.connect({ from: 'peer', dst: ADDRS.pod.v6, port: 8080 });
        expect(r).toMatchObject({ who: 'inbound', localPort: 15006 });
        r = await pod.connect({ from: 'pod', dst: ADDRS.peer.v6, port: 80, ...app });
        expect(r).toMatchObject({ who: 'outbound', localPort: 15001 });
      }
    });
  });
});

describe.each(BACKENDS)('TPROXY sidecar, %s backend', (backend) => {
  it('inbound is delivered to the transparent listener on 15006 with the real addresses; outbound is REDIRECTed to 15001', async () => {
    await withPod({ ipv6: true }, async (pod) => {
      await program(pod, 'TPROXY', true, backend);
      await startSidecarPod(pod, 'TPROXY');
      for (const f of ['v4', 'v6'] as const) {
        const podIp = ADDRS.pod[f];
        const peerIp = ADDRS.peer[f];
        // The listener's own address is the original destination, its peer the real client.
        let r = await pod.connect({ from: 'peer', dst: podIp, port: 8080 });
        expect(r).toMatchObject({ who: 'inbound', localPort: 8080, local: [podIp, 8080], peer: r.clientLocal });
        expect(r.peer?.[0]).toBe(peerIp);
        r = await pod.connect({ from: 'peer', dst: podIp, port: 15090 });
        expect(r).toMatchObject({ who: 'stats', local: [podIp, 15090] });
        // As in Istio: the tunnel port's RETURN is in nat ISTIO_INBOUND, which TPROXY mode does not
        // hook, so inbound 15008 is TPROXYed to 15006 like any other port.
        r = await pod.connect({ from: 'peer', dst: podIp, port: 15008 });
        expect(r).toMatchObject({ who: 'inbound', local: [podIp, 15008] });
        r = await pod.connect({ from: 'pod', dst: peerIp, port: 80, ...app });
        expect(r).toMatchObject({ who: 'outbound', localPort: 15001, origDst: [peerIp, 80] });
        r = await pod.connect({ from: 'pod', dst: peerIp, port: 80, ...proxyTproxy });
        expect(r).toMatchObject({ who: 'peer-80', peer: [podIp, r.clientLocal?.[1]] });
        r = await pod.connect({ from: 'pod', dst: LOOPBACK[f], port: 8080, ...app });
        expect(r).toMatchObject({ who: 'app', local: [LOOPBACK[f], 8080] });
      }
    });
  });

  it('policy routing: the proxy connecting to the app from the client address (original_src, mark 1337) gets its replies only through the fwmark rule', async () => {
    await withPod({ ipv6: true }, async (pod) => {
      const payloads = await program(pod, 'TPROXY', true, backend);
      await startSidecarPod(pod, 'TPROXY');
      // What Envoy's original_src filter does: IP_TRANSPARENT, bind the client's address, SO_MARK 1337.
      const originalSrc = (f: Fam) => ({ from: 'pod', dst: ADDRS.pod[f], port: 8080, ...proxyTproxy, transparent: true, mark: 1337, src: ADDRS.peer[f] }) as const;
      for (const f of ['v4', 'v6'] as const) {
        const r = await pod.connect(originalSrc(f));
        expect(r).toMatchObject({ who: 'app', local: [ADDRS.pod[f], 8080], peer: r.clientLocal });
        expect(r.peer?.[0]).toBe(ADDRS.peer[f]);
      }
      // Without the rule, the app's reply to the client address is routed out of eth0 to the peer.
      for (const f of ['v4', 'v6'] as const) {
        const rule = payloads.ipCommands.find((c) => c[1] === IP_FAMILY_FLAG[f] && c[2] === 'rule');
        expect(rule, `${f} fwmark rule in ipCommands`).toBeDefined();
        const del = await pod.exec('pod', 'ip', [...(rule ?? []).slice(1, 3), 'del', ...(rule ?? []).slice(4)]);
        expect(del.exitCode, del.stderr).toBe(0);
        const r = await pod.connect(originalSrc(f));
        expect(r).toEqual({ error: 'timeout' });
      }
    });
  });

  it("as in Istio, a proxy running as uid 1337 has its original_src connections captured again by nat (Istio's injection template runs the TPROXY proxy as uid 0, gid 1337)", async () => {
    await withPod({ ipv6: true }, async (pod) => {
      await program(pod, 'TPROXY', true, backend);
      await startSidecarPod(pod, 'TPROXY');
      // nat ISTIO_OUTPUT sends uid 1337's non-localhost traffic on lo to ISTIO_IN_REDIRECT (15006):
      // IPv6 is accepted there by the inbound listener itself; IPv4, REDIRECTed to 127.0.0.1, gets no
      // answer at all. Either way the app never sees it.
      const v4 = await pod.connect({ from: 'pod', dst: ADDRS.pod.v4, port: 8080, ...proxyRedirect, transparent: true, mark: 1337, src: ADDRS.peer.v4 });
      expect(v4).toEqual({ error: 'timeout' });
      const v6 = await pod.connect({ from: 'pod', dst: ADDRS.pod.v6, port: 8080, ...proxyRedirect, transparent: true, mark: 1337, src: ADDRS.peer.v6 });
      expect(v6).toMatchObject({ who: 'inbound', localPort: 15006, local: [LOOPBACK.v6, 15006] });
    });
  });
});

const EXTRAS: readonly How[] = ['nft', 'entrypoint --native-nftables'];

describe.each(['REDIRECT', 'TPROXY'] as const)('-c eth1 under %s', (mode) => {
  it.each(EXTRAS)('(%s) traffic arriving on the excluded interface reaches the app; on eth0 the proxy', async (how) => {
    await withPod({ ipv6: true, secondNic: true }, async (pod) => {
      await program(pod, mode, true, how, ['-c', 'eth1']);
      await startSidecarPod(pod, mode);
      for (const f of ['v4', 'v6'] as const) {
        let r = await pod.connect({ from: 'peer', dst: ADDRS.pod2[f], port: 8080 });
        expect(r).toMatchObject({ who: 'app', local: [ADDRS.pod2[f], 8080], peer: [ADDRS.peer2[f], r.clientLocal?.[1]] });
        r = await pod.connect({ from: 'peer', dst: ADDRS.pod[f], port: 8080 });
        expect(r).toMatchObject({ who: 'inbound', peer: [ADDRS.peer[f], r.clientLocal?.[1]] });
      }
    });
  });
});

describe('DNS capture (--redirect-dns)', () => {
  it.each(EXTRAS)("(%s) the app's queries to a listed DNS server are answered by the agent on 15053 as if from the server; the agent's own go upstream", async (how) => {
    await withPod({ ipv6: true }, async (pod) => {
      await program(pod, 'REDIRECT', true, how, ['--redirect-dns=true', '--dns-servers', `${ADDRS.peer.v4},${ADDRS.peer.v6}`]);
      await pod.startListener({ ns: 'pod', kind: 'udp', port: 15053, name: 'agent-dns', uid: PROXY_UID, gid: PROXY_GID });
      await pod.startListener({ ns: 'peer', kind: 'udp', port: 53, name: 'upstream-dns' });
      for (const f of ['v4', 'v6'] as const) {
        // Conntrack undoes the REDIRECT, so the reply comes from the server's address. That needs the
        // query and the agent's reply in the same zone (2), which the raw rules give the agent's uid
        // 1337 only: an agent running as root answers from 127.0.0.1:15053 / [::1]:15053 instead.
        let r = await pod.udp({ from: 'pod', dst: ADDRS.peer[f], port: 53, ...app });
        expect(r).toMatchObject({ who: 'agent-dns', from: [ADDRS.peer[f], 53] });
        r = await pod.udp({ from: 'pod', dst: ADDRS.peer[f], port: 53, ...proxyRedirect });
        expect(r).toMatchObject({ who: 'upstream-dns', peer: [ADDRS.pod[f], r.peer?.[1]], from: [ADDRS.peer[f], 53] });
      }
    });
  });
});
