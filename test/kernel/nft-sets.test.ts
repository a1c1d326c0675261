import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { ADDRS, APP_GID, APP_UID, PROXY_GID, PROXY_UID, withPod, type Pod } from './traffic/pod.js';

/**
 * `--nft-sets` changes the spelling of the nft script, never where traffic goes. For each config
 * (long -x, -i, -b, -d, -q, -o lists, overlapping prefixes among them), two fresh pods are
 * programmed by istio-iptables itself (in-process CLI, `--network-namespace`), once with
 * `--native-nftables` and once with `--native-nftables --nft-sets`; the same probes must be
 * answered by the same listener in both, and by the one the config says.
 */

/** Addresses the peer owns besides its own, to aim outbound probes at (routed via the pod's default route). */
const PEER_EXTRA = ['10.30.1.1', '10.30.5.1', '10.30.6.200', '10.31.0.1', '10.32.0.1', '10.50.0.1', 'fd30::1', 'fd30:5::1', 'fd50::1'];

const BASE = ['-p', '15001', '-z', '15006', '-u', '1337', '--enable-ipv6=true', '--log_output_level=default:error'];
/** Outbound lists: included ranges, exclusions inside and outside them (10.30.6.0/24 and its half overlap), ports. */
const OUTBOUND = [
  '-i', '10.30.0.0/16,10.31.0.0/16,10.32.0.0/16,fd30::/16',
  '-x', '10.30.5.0/24,10.30.6.0/24,10.30.6.128/25,10.31.0.0/16,10.99.0.0/16,fd30:5::/32,fd99::/32',
  '-q', '8443,9443',
  '-o', '3306,5432',
];

interface Probe {
  readonly name: string;
  readonly from: 'pod' | 'peer';
  readonly dst: string;
  readonly port: number;
  /** The listener that must answer. */
  readonly who: string;
}

const app = { uid: APP_UID, gid: APP_GID } as const;

const outboundProbes: readonly Probe[] = [
  { name: 'included', from: 'pod', dst: '10.30.1.1', port: 80, who: 'outbound' },
  { name: 'included, 2nd range', from: 'pod', dst: '10.32.0.1', port: 80, who: 'outbound' },
  { name: 'included, excluded by -x', from: 'pod', dst: '10.30.5.1', port: 80, who: 'peer-80' },
  { name: 'excluded by the covered half of 10.30.6.0/24', from: 'pod', dst: '10.30.6.200', port: 80, who: 'peer-80' },
  { name: 'whole included range excluded', from: 'pod', dst: '10.31.0.1', port: 80, who: 'peer-80' },
  { name: 'not included', from: 'pod', dst: '10.50.0.1', port: 80, who: 'peer-80' },
  { name: '-q port, not included', from: 'pod', dst: '10.50.0.1', port: 8443, who: 'outbound' },
  { name: '-q port, excluded by -x', from: 'pod', dst: '10.30.5.1', port: 8443, who: 'peer-8443' },
  { name: '-o port, included', from: 'pod', dst: '10.30.1.1', port: 3306, who: 'peer-3306' },
  { name: 'v6 included', from: 'pod', dst: 'fd30::1', port: 80, who: 'outbound' },
  { name: 'v6 included, excluded by -x', from: 'pod', dst: 'fd30:5::1', port: 80, who: 'peer-80' },
  { name: 'v6 not included', from: 'pod', dst: 'fd50::1', port: 80, who: 'peer-80' },
  { name: 'v6 -q port', from: 'pod', dst: 'fd50::1', port: 8443, who: 'outbound' },
  { name: 'v6 -o port', from: 'pod', dst: 'fd30::1', port: 3306, who: 'peer-3306' },
];

const inbound = (port: number, who: string): Probe[] =>
  (['v4', 'v6'] as const).map((f) => ({ name: `inbound ${f} :${port}`, from: 'peer', dst: ADDRS.pod[f], port, who }));

interface Case {
  readonly args: readonly string[];
  readonly mode: 'REDIRECT' | 'TPROXY';
  readonly probes: readonly Probe[];
}

const CASES: Record<string, Case> = {
  'REDIRECT, listed inbound ports': {
    args: [...BASE, '-m', 'REDIRECT', '-b', '8080,8081,9090', ...OUTBOUND],
    mode: 'REDIRECT',
    probes: [...inbound(8080, 'inbound'), ...inbound(8081, 'inbound'), ...inbound(7070, 'app-7070'), ...inbound(15008, 'tunnel'), ...outboundProbes],
  },
  'REDIRECT, all inbound ports but -d': {
    args: [...BASE, '-m', 'REDIRECT', '-b', '*', '-d', '15090,15021,15020', ...OUTBOUND],
    mode: 'REDIRECT',
    probes: [...inbound(8080, 'inbound'), ...inbound(15090, 'stats-15090'), ...inbound(15021, 'stats-15021'), ...inbound(7070, 'inbound'), ...inbound(15008, 'tunnel'), ...outboundProbes],
  },
  'TPROXY, listed inbound ports': {
    args: [...BASE, '-m', 'TPROXY', '-b', '8080,8081,9090', ...OUTBOUND],
    mode: 'TPROXY',
    probes: [...inbound(8080, 'inbound'), ...inbound(9090, 'inbound'), ...inbound(7070, 'app-7070'), ...outboundProbes],
  },
};

async function startListeners(pod: Pod, mode: 'REDIRECT' | 'TPROXY'): Promise<void> {
  const proxy = mode === 'REDIRECT' ? { uid: PROXY_UID, gid: PROXY_GID } : { uid: 0, gid: PROXY_GID };
  await pod.startListener({ ns: 'pod', kind: mode === 'REDIRECT' ? 'redirect' : 'tproxy', port: 15006, name: 'inbound', ...proxy });
  await pod.startListener({ ns: 'pod', kind: 'redirect', port: 15001, name: 'outbound', ...proxy });
  await pod.startListener({ ns: 'pod', kind: 'plain', port: 15008, name: 'tunnel', ...proxy });
  for (const port of [15090, 15021]) await pod.startListener({ ns: 'pod', kind: 'plain', port, name: `stats-${port}`, ...proxy });
  for (const port of [8080, 8081, 9090, 7070]) await pod.startListener({ ns: 'pod', kind: 'plain', port, name: `app-${port}`, ...app });
  for (const port of [80, 8443, 3306]) await pod.startListener({ ns: 'peer', kind: 'plain', port, name: `peer-${port}` });
}

/** Program a fresh pod with `args` and return who answered each probe, plus the loaded ruleset. */
async function observe(c: Case, extra: readonly string[]): Promise<{ answers: Record<string, string>; ruleset: string }> {
  return withPod({ ipv6: true }, async (pod) => {
    for (const a of PEER_EXTRA) {
      const r = await pod.exec('peer', 'ip', ['addr', 'add', a.includes(':') ? `${a}/128` : `${a}/32`, 'dev', 'p0', ...(a.includes(':') ? ['nodad'] : [])]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    const r = await runCli([...c.args, '--native-nftables', ...extra, '--network-namespace', pod.ns.pod]);
    expect(r.code, r.stderr).toBe(0);
    await startListeners(pod, c.mode);
    const answers: Record<string, string> = {};
    for (const p of c.probes) {
      const reply = await pod.connect({ from: p.from, dst: p.dst, port: p.port, ...(p.from === 'pod' ? app : {}) });
      answers[p.name] = reply.who ?? `error: ${reply.error ?? 'no answer'}`;
    }
    const list = await pod.exec('pod', 'nft', ['list', 'ruleset']);
    // A rerun with the same flags finds its own rules: nothing to change.
    const again = await runCli([...c.args, '--native-nftables', ...extra, '--network-namespace', pod.ns.pod, '--log_output_level=default:info']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('nftables: unchanged');
    return { answers, ruleset: list.stdout };
  });
}

describe('--nft-sets: the same listener answers every probe as without it', () => {
  it.each(Object.entries(CASES))('%s', async (_name, c) => {
    const plain = await observe(c, []);
    const sets = await observe(c, ['--nft-sets']);
    const expected = Object.fromEntries(c.probes.map((p) => [p.name, p.who]));
    expect(plain.answers).toEqual(expected);
    expect(sets.answers).toEqual(expected);
    // The two runs really differ in their rules: sets in one, a rule per value in the other.
    expect(plain.ruleset).not.toMatch(/daddr \{/);
    // (nft lists adjacent prefixes of an interval set as one range: 10.30.5.0-10.30.6.255.)
    expect(sets.ruleset).toMatch(/ip daddr \{ [^}]*10\.99\.0\.0\/16[^}]*\} counter packets \d+ bytes \d+ return/);
    expect(sets.ruleset).toMatch(/ip6 daddr \{ [^}]*fd30:5::\/32[^}]*\} counter packets \d+ bytes \d+ return/);
    expect(sets.ruleset).toMatch(/tcp dport \{ 3306, 5432 \}/);
    expect(sets.ruleset).toMatch(/tcp dport \{ 8443, 9443 \}/);
    expect(sets.ruleset).not.toContain('10.30.6.128/25');
    expect(sets.ruleset.split('\n').length).toBeLessThan(plain.ruleset.split('\n').length);
  });
});
