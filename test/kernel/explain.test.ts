import { describe, expect, it } from 'vitest';
import { dryRunJson } from '../support/cli.js';
import { MODES } from '../support/modes.js';
import { BACKENDS, loadAndSave, withNetns } from './netns.js';

/**
 * `--dry-run --explain` payloads stay loadable (issue 20): for every golden mode, the explained
 * iptables-restore payloads (a `#` line above each rule) load on both iptables backends, and the
 * explained nft script (also with --nft-sets) with `nft -f -`, into fresh namespaces, leaving the
 * same state as the plain ones.
 */
const modes = Object.entries(MODES)
  .filter(([name]) => !name.endsWith('-json'))
  .map(([name, args]) => [name, args] as const);

async function nftRuleset(tag: string, script: string): Promise<string> {
  return withNetns(tag, async (ns) => {
    const r = await ns.run('nft', ['-f', '-'], script);
    if (r.exitCode !== 0) throw new Error(`nft -f - failed (${r.exitCode}): ${r.stderr}\n--- script ---\n${script}`);
    const list = await ns.run('nft', ['list', 'ruleset']);
    if (list.exitCode !== 0) throw new Error(`nft list ruleset failed: ${list.stderr}`);
    return list.stdout.replace(/counter packets \d+ bytes \d+/g, 'counter');
  });
}

describe.each(BACKENDS)('explained restore payloads on the $name backend', (backend) => {
  it.each(modes)('%s: the same state as the plain payload', async (_name, args) => {
    const [plain, explained] = await Promise.all([dryRunJson(args), dryRunJson([...args, '--explain'])]);
    for (const family of ['ipv4', 'ipv6'] as const) {
      const key = family === 'ipv4' ? 'iptablesRestore' : 'ip6tablesRestore';
      const [p, e] = [plain[key], explained[key]];
      expect(e === null, `${family} payload present in both or neither`).toBe(p === null);
      if (p === null || e === null) continue;
      expect(e).toContain('\n# ');
      expect(e).not.toBe(p);
      const [pState, eState] = await Promise.all([loadAndSave(backend, family, p), loadAndSave(backend, family, e)]);
      expect(pState).toContain(':ISTIO_');
      expect(eState).toBe(pState);
    }
  });
});

describe('explained nft scripts', () => {
  it.each(modes.flatMap(([name, args]) => [[`${name}`, [...args, '--native-nftables']], [`${name} (sets)`, [...args, '--native-nftables', '--nft-sets']]] as const))('%s: the same ruleset as the plain script', async (_name, args) => {
    const [plain, explained] = await Promise.all([dryRunJson(args), dryRunJson([...args, '--explain'])]);
    const [p, e] = [plain.nftScript, explained.nftScript];
    if (p === null || p === undefined || e === null || e === undefined) throw new Error('no nft script');
    expect(e).toContain('\n# ');
    const [pState, eState] = await Promise.all([nftRuleset('nft-plain', p), nftRuleset('nft-explained', e)]);
    expect(pState).toContain('istio-proxy-nat');
    expect(eState).toBe(pState);
  });
});
