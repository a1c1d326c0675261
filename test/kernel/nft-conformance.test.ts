import { describe, expect, it } from 'vitest';
import { withoutCounters } from '../../src/apply/nft.js';
import { dryRunJson, ROOT } from '../support/cli.js';
import { loadNftCases } from '../support/nft.js';
import { withNetns } from './netns.js';

/**
 * Conformance with Istio's native nftables mode: for every case of Istio's nft capture tests, our
 * dry run's `nftScript` and Istio's expected script, each loaded with `nft -f -` into a fresh
 * network namespace, leave the same ruleset: `nft list ruleset` with counter values zeroed, and
 * (stricter: statement order and implicit dependencies included) the kernel's rule bytecode as
 * `nft --debug=netlink list ruleset` prints it, with handles and anonymous set numbers left out.
 */
const { data, cases: given } = loadNftCases();
/** The other cases of Istio's nft capture test table (see golden/istio-nft-extra/README.md). */
const { data: extraData, cases: extra } = loadNftCases(`${ROOT}golden/istio-nft-extra`);
const cases = [...given, ...extra];

/** `nft --debug=netlink list ruleset` as state: no handles, counters zeroed, anonymous sets unnumbered. */
function normalizeNetlink(text: string): string {
  return text
    .split('\n')
    .map((line) =>
      line
        .replace(/^((?:inet|ip|ip6) \S+ \S+)(?: \d+)+$/, '$1')
        .replace(/__set\d+/g, '__set')
        .replace(/\[ counter pkts \d+ bytes \d+ \]/, '[ counter pkts 0 bytes 0 ]'),
    )
    .join('\n')
    .trimEnd();
}

interface Loaded {
  readonly ruleset: string;
  readonly netlink: string;
}

async function loadNft(tag: string, script: string): Promise<Loaded> {
  return withNetns(tag, async (ns) => {
    const before = await ns.run('nft', ['list', 'ruleset']);
    if (before.exitCode !== 0 || before.stdout.trim() !== '') throw new Error(`namespace ${ns.name} is not empty: ${before.stdout}${before.stderr}`);
    const r = await ns.run('nft', ['-f', '-'], script);
    if (r.exitCode !== 0) throw new Error(`nft -f - failed (${r.exitCode}): ${r.stderr}\n--- script ---\n${script}`);
    const list = await ns.run('nft', ['list', 'ruleset']);
    const netlink = await ns.run('nft', ['--debug=netlink', 'list', 'ruleset']);
    if (list.exitCode !== 0 || netlink.exitCode !== 0) throw new Error(`nft list ruleset failed: ${list.stderr}${netlink.stderr}`);
    return { ruleset: withoutCounters(list.stdout).trimEnd(), netlink: normalizeNetlink(netlink.stdout) };
  });
}

describe('nft conformance data', () => {
  it('has the 18 cases of Istio\'s nft capture tests', () => {
    expect(given).toHaveLength(18);
    expect(data.base.at(-1)).toBe('--native-nftables');
  });

  it('has the other 10 cases of Istio\'s nft capture test table, on the same base flags', () => {
    expect(extra).toHaveLength(10);
    expect(extraData.base).toEqual(data.base);
    expect(new Set(cases.map((c) => c.name)).size).toBe(28);
  });
});

describe('conformance with Istio\'s native nftables mode', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s leaves the same nft ruleset', async (_name, c) => {
    const ours = await dryRunJson(c.args);
    expect(typeof ours.nftScript, 'nftScript in nft mode').toBe('string');
    const script = ours.nftScript ?? '';
    expect(script).not.toBe('');
    const [istio, mine] = await Promise.all([loadNft('nft-istio', c.expected), loadNft('nft-ours', script)]);
    // Istio's state must hold its tables (guards against comparing two empty rulesets).
    expect(istio.ruleset).toContain('table inet istio-proxy-nat');
    expect(istio.ruleset).toContain('istio-');
    expect(mine.ruleset).toBe(istio.ruleset);
    expect(mine.netlink).toBe(istio.netlink);
  });
});

/**
 * Shapes Istio's nft test data does not cover (dual-stack TPROXY, per-family CIDR and DNS loops,
 * capture-all DNS, names nft must quote): our script must load as it stands and hold every rule.
 */
const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-b', '*', '-d', '15090,15021,15020', '--native-nftables'];
const EXTRA: Record<string, readonly string[]> = {
  'tproxy-dual-stack': [...SIDECAR, '-m', 'TPROXY', '--enable-ipv6=true'],
  'tproxy-dual-stack-no-inbound': [...SIDECAR, '-m', 'TPROXY', '-b', '', '--enable-ipv6=true'],
  'cidrs-dual-stack': [...SIDECAR, '--enable-ipv6=true', '-x', '10.96.0.10/32,10.1.0.0/16,fd00::a/128', '-i', '10.0.0.0/8,fd00::/8', '-k', 'vnet0,vnet1', '-q', '443', '-o', '3306'],
  'dns-v4-servers-dual-stack': [...SIDECAR, '--enable-ipv6=true', '--redirect-dns', '--dns-servers', '10.96.0.10,10.96.0.11'],
  'dns-v6-servers-dual-stack': [...SIDECAR, '--enable-ipv6=true', '--redirect-dns', '--dns-servers', 'fd00::a', '-x', '1.2.3.4/32'],
  'dns-capture-all': [...SIDECAR, '--enable-ipv6=true', '--redirect-dns', '--capture-all-dns', '--drop-invalid'],
  'quoted-names': [...SIDECAR, '-m', 'TPROXY', '-c', 'eth+,counter,0abc,a@b,veth_1.2', '-k', 'return', '--outbound-owner-groups-exclude', 'ftp,888'],
};

describe('nft scripts beyond Istio\'s test data load as they stand', () => {
  it.each(Object.entries(EXTRA))('%s', async (_name, args) => {
    const script = (await dryRunJson(args)).nftScript ?? '';
    const rules = script.split('\n').filter((l) => /^(add|insert) rule /.test(l)).length;
    expect(rules).toBeGreaterThan(10);
    const loaded = await loadNft('nft-extra', script);
    expect(loaded.ruleset.split('\n').filter((l) => /\bcounter packets 0 bytes 0\b/.test(l)).length).toBe(rules);
  });
});
