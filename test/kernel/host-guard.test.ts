import { describe, expect, it } from 'vitest';
import { hostNetworkState } from '../support/host-guard.js';
import { withNetns } from './netns.js';

/**
 * The guard that fails the run when the host's namespace changed (test/support/host-guard.ts),
 * checked on a namespace of our own: traffic (counters) is not a change; a rule, an nft table, an
 * ip rule or a route is.
 */
describe('the host guard', () => {
  it('sees every kind of change a run could make, and not counters', async () => {
    await withNetns('guard', async (ns) => {
      const read = () => hostNetworkState(['ip', 'netns', 'exec', ns.name]);
      await ns.run('iptables-nft-restore', ['--noflush'], '*nat\n-A OUTPUT -p tcp -j ACCEPT\nCOMMIT\n');
      await ns.run('iptables-legacy-restore', ['--noflush'], '*filter\n-A OUTPUT -p tcp -j ACCEPT\nCOMMIT\n');
      const base = await read();
      expect(base).toContain('-A OUTPUT -p tcp -j ACCEPT');
      // Traffic moves counters: no change.
      await ns.run('ping', ['-c', '2', '-i', '0.2', '127.0.0.1']);
      expect(await read()).toBe(base);
      const changes: [string, string[], string?][] = [
        ['iptables-nft-restore', ['--noflush'], '*mangle\n-A PREROUTING -j ACCEPT\nCOMMIT\n'],
        ['ip6tables-nft-restore', ['--noflush'], '*nat\n-A OUTPUT -p tcp -j ACCEPT\nCOMMIT\n'],
        ['ip6tables-legacy-restore', ['--noflush'], '*filter\n-A INPUT -j ACCEPT\nCOMMIT\n'],
        ['nft', ['add', 'table', 'inet', 'guardtest']],
        ['ip', ['-4', 'rule', 'add', 'fwmark', '7', 'lookup', '77']],
        ['ip', ['-6', 'rule', 'add', 'fwmark', '7', 'lookup', '77']],
        ['ip', ['-4', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '77']],
        ['ip', ['-6', 'route', 'add', 'local', '::/0', 'dev', 'lo', 'table', '77']],
      ];
      let last = base;
      for (const [cmd, args, input] of changes) {
        const r = await ns.run(cmd, args, input);
        expect(r.exitCode, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
        const now = await read();
        expect(now, `${cmd} ${args.join(' ')} went unseen`).not.toBe(last);
        last = now;
      }
    });
  });
});
