import { describe, expect, it } from 'vitest';
import { applyFresh } from '../src/apply/fresh.js';
import { earlyCommands, LOCK_WAIT_SECONDS } from '../src/apply/early.js';
import { quickRaw } from '../src/args.js';
import type { Runner } from '../src/apply/commands.js';
import type { RouteBackend } from '../src/apply/routes.js';
import type { Kernel } from '../src/platform/platform.js';
import { buildPlan } from '../src/build/plan.js';
import { fixedHost } from '../src/config/host.js';
import { configFromArgs } from '../src/config/from.js';
import { createLogger } from '../src/log.js';

/**
 * The entrypoint's prelude starts the fast path's commands before the program has loaded, from
 * the raw command line alone (src/apply/early.ts). A wrong guess costs only a process; these
 * tests pin down when it guesses, and that its guesses are exactly what the fast path then runs.
 */
const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const REDIRECT_V4 = ['istio-iptables', ...SIDECAR, '-m', 'REDIRECT', '--enable-ipv6=false'];
const TPROXY_DUAL = ['istio-iptables', ...SIDECAR, '-m', 'TPROXY', '--enable-ipv6=true'];

/** As the prelude asks: the command line read by quickRaw (no guess when it cannot read it), then the guess. */
function early(args: readonly string[], env: Record<string, string> = {}, ipv6 = false, legacy: boolean | 'unknown' = false): string[][] {
  let raw: ReturnType<typeof quickRaw>;
  try {
    raw = quickRaw(args, env);
  } catch {
    return [];
  }
  return raw === undefined ? [] : earlyCommands(raw, () => ({ value: legacy === 'unknown' ? undefined : legacy, source: 'test' }), () => ipv6);
}

const restore = (bin: string) => [bin, '--noflush', `--wait=${LOCK_WAIT_SECONDS}`];

/**
 * The commands the fast path runs for these flags on a fresh namespace (nft backend), in order,
 * with the routing steps done as the entrypoint does them (netlink: no command), and the steps.
 */
async function fastPathCommands(args: readonly string[], ipv6Detected: boolean): Promise<string[][]> {
  const config = await configFromArgs(args, {}, fixedHost({ proxyUid: 1337, ipv6: ipv6Detected }));
  const calls: string[][] = [];
  const routes: RouteBackend = {
    read: () => Promise.resolve({ has: () => false }),
    change: () => Promise.resolve(null),
  };
  const runner: Runner = {
    run(argv) {
      calls.push([...argv]);
      return Promise.resolve({ exitCode: 0, stdout: '', stderr: '', notFound: false });
    },
  };
  // A fresh namespace as the entrypoint sees it: no legacy tables, no nf_tables tables.
  const kernel: Kernel = {
    routes,
    addresses: () => Promise.resolve({ value: [], source: 'test' }),
    netFile: (path) => Promise.resolve({ value: path.includes('tables_names') ? '' : 'x', source: 'test' }),
    tables: () => Promise.resolve([]),
  };
  const r = await applyFresh(buildPlan(config.capture), {
    runner,
    kernel,
    log: createLogger('none', () => {}),
    owners: { uid: () => undefined, gid: () => undefined },
    reconcile: true,
    forceApply: false,
    cleanupOnly: false,
    lockWaitSeconds: LOCK_WAIT_SECONDS,
  });
  expect(r?.families['ipv4']).toBe('applied');
  return calls;
}

const sorted = (xs: string[][]) => xs.map((x) => x.join(' ')).sort();

describe('commands started before the program loads', () => {
  it.each([
    ['REDIRECT IPv4', REDIRECT_V4, false],
    ['TPROXY dual stack', TPROXY_DUAL, false],
    ['TPROXY, IPv6 detected from the host', ['istio-iptables', ...SIDECAR, '-m', 'TPROXY'], true],
    ['REDIRECT, IPv6 detected (only the ::6 address is routing)', ['istio-iptables', ...SIDECAR], true],
    ['TPROXY without inbound capture (no policy routing)', ['istio-iptables', ...SIDECAR, '-m', 'TPROXY', '-b', '', '--enable-ipv6=false'], false],
  ] as const)('%s: exactly the commands the fast path runs', async (_n, args, ipv6) => {
    const guessed = early(args, {}, ipv6);
    expect(guessed.length).toBeGreaterThan(0);
    expect(sorted(guessed)).toEqual(sorted(await fastPathCommands(args, ipv6)));
  });

  it('REDIRECT IPv4 starts one restore; TPROXY dual stack both restores and no ip (its routing goes over netlink)', () => {
    expect(early(REDIRECT_V4)).toEqual([restore('iptables-nft-restore')]);
    expect(early(TPROXY_DUAL)).toEqual([restore('iptables-nft-restore'), restore('ip6tables-nft-restore')]);
  });

  it('reads the mode and IPv6 from the environment too, as the run will', () => {
    const args = ['istio-iptables', ...SIDECAR];
    expect(early(args, { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ENABLE_IPV6: 'false' })).toEqual(early([...args, '-m', 'TPROXY', '--enable-ipv6=false']));
    expect(early(args, { ENABLE_IPV6: 'true' })).toContainEqual(restore('ip6tables-nft-restore'));
  });

  it.each([
    ['--dry-run'],
    ['--cleanup-only'],
    ['--skip-rule-apply'],
    ['--run-validation'],
    ['--native-nftables'],
    ['--force-apply'],
    ['--network-namespace', 'pod1'],
    ['--force-iptables-binary', 'legacy'],
    ['--output', 'json'],
    // Started with the default bound, which a deadline of the run's own may end before.
    ['--run-timeout', '90s'],
    ['--run-timeout=2s'],
    ['--help'],
    ['--no-such-flag'],
    ['stray'],
    ['--envoy-port'],
  ])('starts nothing with %s', (...extra) => {
    expect(early([...REDIRECT_V4, ...extra])).toEqual([]);
  });

  it('starts nothing when an environment variable asks for a dry run or cleanup, or says something unclear', () => {
    expect(early(REDIRECT_V4, { DRY_RUN: 'true' })).toEqual([]);
    expect(early(REDIRECT_V4, { CLEANUP_ONLY: '1' })).toEqual([]);
    expect(early(REDIRECT_V4, { RUN_TIMEOUT: '5s' })).toEqual([]);
    // DRY_RUN that is not a boolean fails the run (fails closed).
    expect(early(REDIRECT_V4, { DRY_RUN: 'maybe' })).toEqual([]);
    // Another variable Istio cannot parse is ignored (by Istio and by the run): the run applies.
    expect(early(REDIRECT_V4, { FORCE_APPLY: 'maybe' })).toEqual([restore('iptables-nft-restore')]);
    expect(early([...REDIRECT_V4, '--dry-run=maybe'], {})).toEqual([]);
    expect(early(REDIRECT_V4, { DRY_RUN: 'false' })).toEqual([restore('iptables-nft-restore')]);
  });

  it('starts nothing when the namespace has legacy tables or /proc cannot be read (the careful path decides)', () => {
    expect(early(REDIRECT_V4, {}, false, true)).toEqual([]);
    expect(early(REDIRECT_V4, {}, false, 'unknown')).toEqual([]);
  });

  it('takes the leading program name of Istio init-container args, or none', () => {
    expect(early(REDIRECT_V4.slice(1))).toEqual(early(REDIRECT_V4));
  });
});
