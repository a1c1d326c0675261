import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { snapshot, withNetns } from './netns.js';

/**
 * What Istio's injector can render and iptables takes, applied for real: port 0 and port ranges
 * (`--dport a:b`, the whole range 0:65535 included, which iptables-save prints without --dport)
 * load on both iptables backends and as native nftables (`dport a-b`), and a rerun finds exactly
 * the plan (the predicted saved form matches the kernel's), then cleanup leaves the namespace
 * as it was.
 */
const ARGS = [
  'istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-x', '', '-b', '0,80',
  '-d', '15090,15021,0,8080,15020', '-q', '8000:8080,0,9000:9000,0:65535', '-o', '1:1023,0,15021', '--enable-ipv6=true',
];

describe('port 0 and ranges applied for real', () => {
  it.each([
    ['iptables nft backend', ['--force-iptables-binary', 'nft']],
    ['iptables legacy backend', ['--force-iptables-binary', 'legacy']],
    ['native nftables', ['--native-nftables']],
  ])('%s: loads, a rerun is unchanged, cleanup restores the namespace', async (_n, extra) => {
    await withNetns('inj', async (ns) => {
      const args = [...ARGS, ...extra, '--network-namespace', ns.name];
      const pristine = await snapshot(ns);
      const first = await runCli(args);
      expect(first.code, first.stderr).toBe(0);
      const applied = await snapshot(ns);
      if (extra[0] === '--native-nftables') {
        expect(applied).toContain('tcp dport 8000-8080');
        expect(applied).toContain('udp dport 1-1023');
        expect(applied).toContain('tcp dport 0 ');
      } else {
        expect(applied).toContain('-A ISTIO_OUTPUT -p tcp -m tcp --dport 8000:8080 -j ISTIO_REDIRECT');
        expect(applied).toContain('-A ISTIO_OUTPUT -p udp -m udp --dport 1:1023 -j RETURN');
        expect(applied).toContain('-A ISTIO_INBOUND -p tcp -m tcp --dport 0 -j ISTIO_TPROXY');
        expect(applied).toContain('-A ISTIO_OUTPUT -p tcp -m tcp --dport 0 -j RETURN');
        expect(applied).toContain('-A ISTIO_OUTPUT -p tcp -m tcp -j ISTIO_REDIRECT');
      }
      const again = await runCli(args);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/unchanged/);
      expect(again.stderr).not.toMatch(/drift|reconciled|applied/);
      expect(await snapshot(ns)).toBe(applied);
      const clean = await runCli([...args, '--cleanup-only']);
      expect(clean.code, clean.stderr).toBe(0);
      // Legacy tables, once used in a namespace, stay there empty (the kernel keeps them).
      const emptyTablesGone = (s: string) => (extra[1] === 'legacy' ? s.replace(/^\*[a-z]+\n(?::[A-Z]+ ACCEPT \[0:0\]\n)*COMMIT\n?/gm, '').replace(/\n+/g, '\n') : s);
      expect(emptyTablesGone(await snapshot(ns))).toBe(emptyTablesGone(pristine));
    });
  });
});
