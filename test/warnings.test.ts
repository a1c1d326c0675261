import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { configFromArgs } from '../src/config/from.js';
import { fixedHost } from '../src/config/host.js';
import { configWarnings, type ConfigWarning } from '../src/config/warnings.js';
import { ROOT } from './support/cli.js';

/**
 * Settings accepted that do nothing are said as warnings (src/config/warnings.ts, one pure
 * function), by both programs alike: the Node CLI and the entrypoint print the same lines, and the
 * run goes on (exit 0).
 */

const BASE = ['-p', '15001', '-z', '15006', '-u', '1337'];
const CAPTURING = [...BASE, '-b', '*', '-i', '*'];

const CASES: readonly (readonly [string, readonly string[], readonly ConfigWarning['code'][]])[] = [
  ['a sidecar configuration', [...CAPTURING, '--enable-ipv6=false'], []],
  ['--capture-all-dns without --redirect-dns', [...CAPTURING, '--capture-all-dns', '--enable-ipv6=false'], ['capture-all-dns-without-redirect-dns']],
  ['--capture-all-dns with --redirect-dns', [...CAPTURING, '--capture-all-dns', '--redirect-dns', '--enable-ipv6=false'], []],
  ['--dns-servers without --redirect-dns', [...CAPTURING, '--dns-servers', '10.0.0.10', '--enable-ipv6=false'], ['dns-servers-without-redirect-dns']],
  ['IPv6 CIDRs in -i with IPv6 off', [...BASE, '-b', '*', '-i', '10.0.0.0/8,fd00::/8', '--enable-ipv6=false'], ['ipv6-cidrs-with-ipv6-off']],
  ['IPv6 CIDRs in -x with IPv6 off', [...CAPTURING, '-x', 'fd00::/8,10.1.0.0/16', '--enable-ipv6=false'], ['ipv6-cidrs-with-ipv6-off']],
  ['IPv6 CIDRs with IPv6 on', [...BASE, '-b', '*', '-i', '10.0.0.0/8,fd00::/8', '-x', 'fd01::/16', '--enable-ipv6=true'], []],
  ['IPv6 nameservers with IPv6 off', [...CAPTURING, '--redirect-dns', '--dns-servers', '10.0.0.10,fd00::10', '--enable-ipv6=false'], ['ipv6-cidrs-with-ipv6-off']],
  ['nothing captured', [...BASE, '--enable-ipv6=false'], ['captures-nothing']],
  ['only IPv6 destinations, IPv6 off', [...BASE, '-i', 'fd00::/8', '--enable-ipv6=false'], ['ipv6-cidrs-with-ipv6-off', 'captures-nothing']],
  ['only IPv6 destinations, IPv6 on', [...BASE, '-i', 'fd00::/8', '--enable-ipv6=true'], []],
  ['only inbound ports', [...BASE, '-b', '8080', '--enable-ipv6=false'], []],
  ['only outbound ports', [...BASE, '-q', '443', '--enable-ipv6=false'], []],
  ['only DNS', [...BASE, '--redirect-dns', '--capture-all-dns', '--enable-ipv6=false'], []],
  ['nothing captured, cleanup only', [...BASE, '--cleanup-only', '--enable-ipv6=false'], []],
  ['everything at once', [...BASE, '-x', 'fd00::/8', '--capture-all-dns', '--dns-servers', '10.0.0.10', '--enable-ipv6=false'], ['capture-all-dns-without-redirect-dns', 'dns-servers-without-redirect-dns', 'ipv6-cidrs-with-ipv6-off', 'captures-nothing']],
];

describe('configWarnings: what the configuration sets that does nothing', () => {
  it.each(CASES)('%s', async (_name, args, codes) => {
    const config = await configFromArgs(args, {}, fixedHost());
    const warnings = configWarnings(config);
    expect(warnings.map((w) => w.code)).toEqual(codes);
    // Pure: the same configuration, the same words.
    expect(configWarnings(config)).toEqual(warnings);
  });

  it('each warning names the flags concerned and the values', async () => {
    const [dns, v6, none, servers] = await Promise.all(
      [[...CAPTURING, '--capture-all-dns'], [...CAPTURING, '-x', 'fd00::/8'], BASE, [...CAPTURING, '--dns-servers', '10.0.0.10']].map(async (a) =>
        configWarnings(await configFromArgs([...a, '--enable-ipv6=false'], {}, fixedHost())),
      ),
    );
    expect(dns?.[0]?.message).toBe('--capture-all-dns has no effect without --redirect-dns: no DNS traffic is captured');
    expect(v6?.[0]?.message).toBe('-x/--istio-service-exclude-cidr lists IPv6 (fd00::/8) but IPv6 is off (--enable-ipv6=false, given or detected): no IPv6 rules are written, so these have no effect');
    expect(none?.[0]?.message).toContain('this configuration captures no traffic: no inbound ports (-b/--istio-inbound-ports)');
    expect(servers?.[0]?.message).toBe('--dns-servers (10.0.0.10) has no effect without --redirect-dns');
  });
});

const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const NODE_BIN = join(ROOT, 'bin/istio-iptables.js');
const run = (argv: readonly string[], args: readonly string[]) =>
  execa(argv[0] as string, [...argv.slice(1), ...args], { reject: false, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, extendEnv: false, timeout: 30_000 });

describe('both programs say the same warnings (a dry run), and go on', () => {
  it.each(CASES.filter(([, , codes]) => codes.length > 0))('%s', async (_name, args, codes) => {
    for (const json of [false, true]) {
      const flags = [...args, '--dry-run', ...(json ? ['--log_as_json'] : [])];
      const [node, entry] = await Promise.all([run([process.execPath, NODE_BIN], flags), run([ENTRYPOINT], flags)]);
      expect(node.exitCode, node.stderr).toBe(0);
      expect(entry.exitCode, entry.stderr).toBe(0);
      expect(entry.stdout).toBe(node.stdout);
      const lines = (s: string) => s.split('\n').filter((l) => l !== '').map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
      expect(lines(entry.stderr)).toEqual(lines(node.stderr));
      if (!json) {
        expect(lines(node.stderr).filter((l) => l.startsWith('warn\t')).length).toBe(codes.length);
        continue;
      }
      // --log_as_json: each warning one record, its code in the field `warning`.
      const records = lines(node.stderr).map((l) => JSON.parse(l) as { level: string; warning?: string });
      expect(records.filter((r) => r.warning !== undefined).map((r) => r.warning)).toEqual(codes);
      expect(records.filter((r) => r.warning !== undefined).every((r) => r.level === 'warn')).toBe(true);
    }
  });
});
