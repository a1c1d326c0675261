import { describe, expect, it } from 'vitest';
import { childEnv, CHILD_ENV } from '../src/apply/commands.js';
import { configFromArgs } from '../src/config/from.js';
import { fixedHost } from '../src/config/host.js';
import { configurationFlags, logConfiguration, logLoaded, logRulesAfter } from '../src/log-blocks.js';
import { createLogger, formatLogLine } from '../src/log.js';
import type { Runner } from '../src/apply/commands.js';

/**
 * The blocks an apply logs for an operator to paste (src/log-blocks.ts): the configuration as
 * flags (a dry run with them builds the same configuration), what a command was given to load,
 * the rules after; each one record, with fields in JSON. And what a child's environment is.
 */

const CONFIGS: readonly (readonly string[])[] = [
  ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=false'],
  ['-m', 'TPROXY', '-b', '80,443', '-i', '10.0.0.0/8,fd00::/8', '-x', '10.1.0.0/16,127.0.0.0/8', '-q', '8000:8080,9090', '-o', '22', '-k', 'virt0,virt1', '-c', 'eth9', '--enable-ipv6=true', '-t', '4096', '-r', '200'],
  ['-u', 'istio-proxy,1000', '-g', '1001', '--outbound-owner-groups', 'java,1200', '--redirect-dns', '--dns-servers', '10.0.0.10,fd00::10', '--drop-invalid', '--dual-stack', '--probe-timeout', '1.5s', '--log_target', 'stdout', '--log_target', 'stderr'],
  ['--outbound-owner-groups-exclude', 'nobody,65534', '--redirect-dns', '--capture-all-dns', '--ipv4-loopback-cidr', '127.0.0.0/8', '--network-namespace', '/proc/1/ns/net', '--force-iptables-binary', 'legacy', '--reconcile=false', '--log_output_level', 'debug', '--log_as_json'],
  ['--cleanup-only', '--native-nftables', '--nft-sets', '--run-validation', '--iptables-probe-port', '15009', '--skip-rule-apply', '--cni-mode', '--force-apply'],
];

describe('the configuration block', () => {
  it.each(CONFIGS.map((c) => [c.join(' '), c] as const))('as flags, read back, is the same configuration: %s', async (_n, args) => {
    const config = await configFromArgs(args, {}, fixedHost());
    const flags = configurationFlags(config);
    const again = await configFromArgs(flags.map(([long, value]) => `--${long}=${value}`), {}, fixedHost({ proxyUid: 4242, ipv6: !config.capture.enableIpv6 }));
    expect({ ...again, run: { ...again.run, dryRun: config.run.dryRun, output: config.run.output, explain: config.run.explain } }).toEqual(config);
    // Every option of the configuration is there (the printout's own three aside), once (a repeatable flag once per value).
    expect(new Set(flags.map(([l]) => l)).size).toBe(flags.filter(([l]) => l !== 'log_target').length + (flags.some(([l]) => l === 'log_target') ? 1 : 0));
  });

  it('is one record: in text the flags as lines to paste (values quoted for a shell), in JSON a field `config`', async () => {
    const config = await configFromArgs(CONFIGS[0] as string[], {}, fixedHost());
    let text = '';
    logConfiguration(createLogger('info', (t) => void (text += t)), config);
    expect(text).toMatch(/^info\tconfiguration:\n--envoy-port=15001\n--inbound-capture-port=15006\n/);
    expect(text).toContain("\n--istio-inbound-ports='*'\n");
    expect(text).toContain('\n--istio-local-exclude-ports=15090,15021,15020\n');
    expect(text).not.toContain('--dry-run');
    let json = '';
    logConfiguration(createLogger('info', (t) => void (json += t), { json: true }), config);
    expect(json.split('\n')).toHaveLength(2);
    const record = JSON.parse(json) as { msg: string; config: Record<string, string> };
    expect(record.msg).toBe(text.slice('info\t'.length, -1));
    expect(record.config['istio-inbound-ports']).toBe('*');
    expect(record.config['proxy-uid']).toBe('1337');
    expect(record.config['log_target']).toBe('stderr');
  });

  it('is not built below info', async () => {
    const config = await configFromArgs([], {}, fixedHost());
    let out = '';
    logConfiguration(createLogger('warn', (t) => void (out += t)), config);
    expect(out).toBe('');
  });
});

describe('what was loaded, and the rules after', () => {
  it('the input of a command: its lines after the command line; in JSON command, family, input', () => {
    let text = '';
    let json = '';
    const payload = '*nat\n-N ISTIO_OUTPUT\nCOMMIT\n';
    logLoaded(createLogger('info', (t) => void (text += t)), ['iptables-restore', '--noflush', '--wait=30'], payload, { family: 'ipv6' });
    logLoaded(createLogger('info', (t) => void (json += t), { json: true }), ['nft', '-f', '-'], payload, { what: 'rollback' });
    expect(text).toBe('info\tinput of iptables-restore --noflush --wait=30 (ipv6):\n*nat\n-N ISTIO_OUTPUT\nCOMMIT\n');
    expect(JSON.parse(json)).toMatchObject({ level: 'info', msg: 'input of nft -f - (rollback):\n*nat\n-N ISTIO_OUTPUT\nCOMMIT', command: ['nft', '-f', '-'], purpose: 'rollback', input: payload });
  });

  const fake = (answers: Record<string, { exitCode: number; stdout: string; stderr: string }>, calls: string[][]): Runner => ({
    run(argv) {
      calls.push([...argv]);
      const a = answers[argv.join(' ')];
      return Promise.resolve(a === undefined ? { exitCode: 127, stdout: '', stderr: `${argv[0]}: not found`, notFound: true } : { ...a, notFound: false });
    },
  });

  it("each family's save, as read after the run; one that fails is a warning", async () => {
    const calls: string[][] = [];
    const runner = fake({ 'iptables-nft-save': { exitCode: 0, stdout: '*nat\nCOMMIT\n', stderr: '' }, 'ip6tables-nft-save': { exitCode: 4, stdout: '', stderr: 'ip6tables: no IPv6\nmore' } }, calls);
    let out = '';
    await logRulesAfter(createLogger('info', (t) => void (out += t)), runner, { kind: 'iptables', save: { ipv4: 'iptables-nft-save', ipv6: 'ip6tables-nft-save' }, families: ['ipv4', 'ipv6'] });
    expect(calls).toEqual([['iptables-nft-save'], ['ip6tables-nft-save']]);
    expect(out).toBe('info\trules after (ipv4, iptables-nft-save):\n*nat\nCOMMIT\nwarn\tcannot read the rules after the run (ipv6, ip6tables-nft-save): ip6tables: no IPv6\n');
    let json = '';
    await logRulesAfter(createLogger('info', (t) => void (json += t), { json: true }), fake({ 'nft list ruleset': { exitCode: 0, stdout: 'table inet x {\n}\n', stderr: '' } }, []), { kind: 'nftables' });
    expect(JSON.parse(json)).toMatchObject({ msg: 'rules after (nft list ruleset):\ntable inet x {\n}', command: ['nft', 'list', 'ruleset'], rules: 'table inet x {\n}\n' });
  });

  it('nothing is read below info', async () => {
    const calls: string[][] = [];
    await logRulesAfter(createLogger('warn', () => {}), fake({}, calls), { kind: 'nftables' });
    expect(calls).toEqual([]);
  });
});

describe('a record with fields', () => {
  it("JSON: Istio's keys first, then the fields; they never replace Istio's keys; text: the message only", () => {
    const clock = () => 0;
    expect(formatLogLine('warn', 'm', true, clock, { warning: 'captures-nothing', msg: 'x', n: 3, list: ['a'] })).toBe(
      '{"level":"warn","time":"1970-01-01T00:00:00.000000Z","msg":"m","warning":"captures-nothing","n":3,"list":["a"]}\n',
    );
    expect(formatLogLine('warn', 'm', false, clock, { warning: 'captures-nothing' })).toBe('warn\tm\n');
  });
});

describe("a child's environment", () => {
  it('PATH and XTABLES_LOCKFILE only, as given; nothing that changes what a program loads', () => {
    expect(CHILD_ENV).toEqual(['PATH', 'XTABLES_LOCKFILE']);
    const env = { PATH: '/usr/sbin:/usr/bin', XTABLES_LOCKFILE: '/run/xt.lock', XTABLES_LIBDIR: '/tmp/evil', LD_PRELOAD: '/tmp/evil.so', LD_LIBRARY_PATH: '/tmp', NODE_OPTIONS: '--require /tmp/x.js', HOME: '/root' };
    expect(childEnv(env)).toEqual({ PATH: '/usr/sbin:/usr/bin', XTABLES_LOCKFILE: '/run/xt.lock' });
    expect(childEnv({ XTABLES_LIBDIR: '/tmp/evil', PATH: undefined })).toEqual({});
  });
});
