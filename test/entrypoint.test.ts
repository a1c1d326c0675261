import { chmodSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { conformanceCases, ROOT } from './support/cli.js';
import { MODES } from './support/modes.js';

/**
 * The init container's entrypoint runs the CLI on another runtime (QuickJS, native/host.c) and
 * hands some paths to the Bun-compiled full CLI. Whatever runs it, the output must be the same:
 * each dry run here is compared with the CLI run in-process under Node on the same host (host
 * facts detected the same way). Nothing is applied: every run is a dry run, --help or an error.
 */
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');

async function viaNode(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { env: { ...process.env, ...env }, io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) } });
  return { code, stdout, stderr };
}

/** A copy of the entrypoint in a folder of its own: no full CLI next to it. Its path. */
function entrypointAlone(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'iit-alone-')), 'istio-iptables');
  copyFileSync(ENTRYPOINT, path);
  chmodSync(path, 0o755);
  return path;
}

const viaEntrypoint = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  execa(ENTRYPOINT, [...args], { reject: false, env: { ...process.env, ...env }, extendEnv: false, timeout: 30_000 });

const cases: [string, readonly string[]][] = [
  ...Object.entries(MODES).map(([name, args]) => [`mode ${name}`, args] as [string, readonly string[]]),
  ...conformanceCases().map((c) => [`${c.suite} ${c.name}`, c.args] as [string, readonly string[]]),
];

describe('the entrypoint prints the same dry run as the CLI under Node', () => {
  it.each(cases)('%s (text and json)', async (_n, args) => {
    for (const format of ['text', 'json']) {
      const dry = [...args, '--dry-run', '--output', format];
      const [node, entry] = await Promise.all([viaNode(dry), viaEntrypoint(dry)]);
      expect(node.code, node.stderr).toBe(0);
      expect(entry.exitCode, entry.stderr).toBe(0);
      expect(entry.stdout).toBe(node.stdout.replace(/\n$/, ''));
      expect(entry.stderr).toBe(node.stderr.replace(/\n$/, ''));
    }
  });

  it('reads the environment as the CLI does (env vars, a flag beating one, Istio\'s precedence among them)', async () => {
    const env = { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_PORTS: '*', ISTIO_SERVICE_CIDR: '*', ISTIO_META_DNS_CAPTURE: 'true', REDIRECT_DNS: 'false', ENABLE_IPV6: 'false' };
    const args = ['istio-iptables', '-p', '15001', '-m', 'REDIRECT', '--dns-servers', '10.96.0.10', '--dry-run', '--output', 'json'];
    const node = await viaNode(args, env);
    expect(node.code).toBe(0);
    const entry = await viaEntrypoint(args, env);
    expect(entry.exitCode, entry.stderr).toBe(0);
    expect(entry.stdout).toBe(node.stdout.replace(/\n$/, ''));
    const plan = JSON.parse(entry.stdout) as { iptablesRestore: string };
    expect(plan.iptablesRestore).toContain('-j REDIRECT --to-ports 15006');
    expect(plan.iptablesRestore).toContain('--dport 53');
  });

  it.each([
    [['-p', 'abc', '--dry-run'], /invalid value "abc" for -p\/--envoy-port: expected a port 1-65535/],
    [['--dry-run', '-i', '10.0.0.0/33'], /-i\/--istio-service-cidr/],
    [['--dry-run', '-b', '80\n-A OUTPUT -j ACCEPT'], /-b\/--istio-inbound-ports/],
  ])('rejects bad values as the CLI does: %j', async (args, message) => {
    const [node, entry] = await Promise.all([viaNode(args), viaEntrypoint(args)]);
    expect(entry.exitCode).toBe(1);
    expect(node.code).toBe(1);
    expect(entry.stdout).toBe('');
    expect(entry.stderr).toMatch(message);
    expect(entry.stderr).toBe(node.stderr.replace(/\n$/, ''));
  });
});

describe('a large configuration', () => {
  it('8,000 outbound CIDRs, 1,000 excluded, 1,000 inbound ports: handed to the full CLI, the same dry run', async () => {
    const cidrs = Array.from({ length: 8000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`);
    const env = { ISTIO_SERVICE_CIDR: cidrs.join(',') };
    const args = ['-p', '15001', '-b', Array.from({ length: 1000 }, (_, i) => 1000 + i).join(','), '-x', cidrs.slice(0, 1000).map((c) => c.replace(/^10\./, '11.')).join(','), '--enable-ipv6=false', '--dry-run'];
    const node = await viaNode(args, env);
    expect(node.code).toBe(0);
    const entry = await viaEntrypoint(args, { ...env, ISTIO_IPTABLES_TRACE_RUNTIME: '1' });
    expect(entry.exitCode, entry.stderr).toBe(0);
    expect(entry.stderr).not.toMatch(/program evaluated/); // replaced by the full CLI before that
    expect(entry.stdout.split('\n').length).toBeGreaterThan(10_000);
    expect(entry.stdout).toBe(node.stdout.replace(/\n$/, ''));
  });

  it('without the full CLI, run here (past the runtime arena, into the C allocator): the same dry run', async () => {
    const alone = entrypointAlone();
    const cidrs = Array.from({ length: 3000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`);
    const env = { ISTIO_SERVICE_CIDR: cidrs.join(','), ISTIO_IPTABLES_TRACE_RUNTIME: '1' };
    const args = ['-p', '15001', '-b', Array.from({ length: 1000 }, (_, i) => 1000 + i).join(','), '--enable-ipv6=false', '--dry-run'];
    const node = await viaNode(args, env);
    expect(node.code).toBe(0);
    const entry = await execa(alone, args, { reject: false, env: { ...process.env, ...env } });
    expect(entry.exitCode, entry.stderr).toBe(0);
    expect(entry.stderr).toMatch(/program evaluated/);
    expect(entry.stdout).toBe(node.stdout.replace(/\n$/, ''));
  });
});

describe('what the entrypoint hands to the full CLI', () => {
  it('--help: the full usage, exit 0', async () => {
    const r = await viaEntrypoint(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^Usage: istio-iptables \[flags\]/);
    expect(r.stdout).toContain('--istio-inbound-interception-mode');
  });

  it('an unknown flag: the CLI error, exit 1, nothing on stdout', async () => {
    const r = await viaEntrypoint(['istio-iptables', '-p', '15001', '--no-such-flag', '--dry-run']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('istio-iptables: unknown flag or argument: no-such-flag (see --help)');
  });

  it('trace: walks a flow through the plan', async () => {
    const args = ['trace', '-p', '15001', '-z', '15006', '-m', 'REDIRECT', '-b', '*', '-i', '*', '--enable-ipv6=false'];
    const flow = ['inbound', 'tcp', '10.1.1.1:40000', '->', '10.0.0.5:8080'];
    const [help, entry] = await Promise.all([viaEntrypoint(['trace', '--help']), viaEntrypoint([...args, '--output', 'json', ...flow])]);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(/trace/);
    expect(entry.exitCode, entry.stderr).toBe(0);
    const node = await viaNode([...args, '--output', 'json', ...flow]);
    expect(node.code, node.stderr).toBe(0);
    expect(JSON.parse(entry.stdout)).toMatchObject({ verdict: 'redirect', toPort: 15006 });
    expect(entry.stdout).toBe(node.stdout.replace(/\n$/, ''));
  });

  it('without the full CLI next to it: a clear error naming what is missing, exit 1', async () => {
    const alone = entrypointAlone();
    const r = await execa(alone, ['--help'], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/--help or an unknown argument needs the full CLI, .*istio-iptables-full/);
    // A dry run needs nothing else.
    expect((await execa(alone, ['-p', '15001', '--dry-run'], { reject: false })).exitCode).toBe(0);
  });
});

describe('the runtime', () => {
  it('ISTIO_IPTABLES_TRACE_RUNTIME=1 reports its steps with times on stderr', async () => {
    const r = await viaEntrypoint(['-p', '15001', '--dry-run'], { ISTIO_IPTABLES_TRACE_RUNTIME: '1' });
    expect(r.exitCode).toBe(0);
    const steps = r.stderr.split('\n').filter((l) => l.startsWith('runtime\t')).map((l) => l.replace(/^runtime\t\s*[0-9.]+ ms\s+/, ''));
    expect(steps[0]).toMatch(/^context ready, arena KB \d+$/);
    // Arena use as it grows: the runtime's set-up, then the prelude, then the program.
    const used = (step: string) => Number(/^(?:context ready|prelude done|program evaluated), arena KB (\d+)$/.exec(steps.find((s) => s.startsWith(step)) ?? '')?.[1]);
    expect(used('context ready')).toBeGreaterThan(0);
    expect(used('prelude done')).toBeGreaterThan(used('context ready'));
    expect(used('program evaluated')).toBeGreaterThan(used('prelude done'));
    expect(steps.at(-1)).toBe('event loop done, exit code 0');
  });

  it('prints the same dry run without its page-faulting helper thread (ISTIO_IPTABLES_RUNTIME_NO_PREFAULT=1)', async () => {
    const args = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-b', '*', '-i', '*', '--enable-ipv6=true', '--dry-run', '--output', 'json'];
    const [withHelper, without] = await Promise.all([viaEntrypoint(args), viaEntrypoint(args, { ISTIO_IPTABLES_RUNTIME_NO_PREFAULT: '1' })]);
    expect(withHelper.exitCode).toBe(0);
    expect(without.exitCode).toBe(0);
    expect(JSON.parse(without.stdout).ip6tablesRestore).toContain('-j TPROXY');
    expect(without.stdout).toBe(withHelper.stdout);
  });
});
