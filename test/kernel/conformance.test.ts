import { describe, expect, it } from 'vitest';
import { conformanceCases, dryRunJson } from '../support/cli.js';
import { BACKENDS, loadAndSave, withNetns } from './netns.js';

/**
 * Conformance with Istio: for every case derived from Istio's own test suite, our payload and
 * Istio's, each loaded with `iptables-restore --noflush` into a fresh network namespace, leave the
 * same kernel state (iptables-save without comments and counters), on both iptables backends.
 */
const cases = conformanceCases();

describe('conformance data', () => {
  it('has the 17 cases from shared/conformance', () => {
    expect(cases.filter((c) => c.suite === 'istio')).toHaveLength(17);
  });
});

describe.each(BACKENDS)('conformance with Istio on the $name backend', (backend) => {
  it.each(cases.map((c) => [`${c.suite}/${c.name}`, c] as const))('%s leaves the same kernel state', async (_label, c) => {
    const ours = await dryRunJson(c.args);
    for (const family of ['ipv4', 'ipv6'] as const) {
      const expected = c.expected[family];
      const payload = family === 'ipv4' ? ours.iptablesRestore : ours.ip6tablesRestore;
      if (expected === null) {
        expect(payload, `${family} payload should be absent`).toBeNull();
        continue;
      }
      expect(payload, `${family} payload`).not.toBeNull();
      const [istioState, ourState] = await Promise.all([
        loadAndSave(backend, family, expected),
        loadAndSave(backend, family, payload ?? ''),
      ]);
      // Istio's state must hold its rules (guards against comparing two empty tables).
      expect(istioState).toContain(':ISTIO_');
      expect(ourState).toBe(istioState);
    }
  });
});

describe('TPROXY policy routing', () => {
  const tproxyCases = cases.filter((c) => c.args.includes('TPROXY'));

  it('covers the TPROXY cases', () => {
    expect(tproxyCases.length).toBeGreaterThanOrEqual(2);
  });

  it.each(tproxyCases.map((c) => [c.name, c] as const))('%s: ipCommands program fwmark 0x539 -> table 133 -> local', async (_n, c) => {
    const ours = await dryRunJson(c.args);
    expect(ours.ipCommands).toContainEqual(['ip', '-4', 'rule', 'add', 'fwmark', '1337', 'lookup', '133']);
    expect(ours.ipCommands).toContainEqual(['ip', '-4', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '133']);
    await withNetns('routes', async (ns) => {
      for (const argv of ours.ipCommands) {
        const r = await ns.run(argv[0] ?? 'ip', argv.slice(1));
        expect(r.exitCode, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
      }
      const rules = await ns.run('ip', ['-4', 'rule', 'show']);
      expect(rules.stdout).toMatch(/from all fwmark 0x539 lookup 133/);
      const routes = await ns.run('ip', ['-4', 'route', 'show', 'table', '133']);
      expect(routes.stdout).toMatch(/^local default dev lo scope host/m);
    });
  });
});
