import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { conformanceCases, ROOT } from './support/cli.js';
import { MODES } from './support/modes.js';

/**
 * The init container's entrypoint runs the CLI on another runtime (QuickJS, native/host.c), all
 * of it, on its own. Whatever runs it, the output must be the same: each dry run here is
 * compared with the CLI run in-process under Node on the same host (host facts detected the same
 * way), and --help with the Node CLI's own executable. Nothing is applied: every run is a dry
 * run, --help, trace or an error.
 */
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
/** The same build with the runtime's step timing compiled in (scripts/build-entrypoint.mjs); never shipped. */
const ENTRYPOINT_TRACE = join(ROOT, 'dist/entrypoint-trace/istio-iptables');
const NODE_CLI = join(ROOT, 'bin/istio-iptables.js');

async function viaNode(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { env: { ...process.env, ...env }, io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) } });
  return { code, stdout, stderr };
}

/** The Node CLI as its own process (what `npx istio-iptables` runs). */
const viaNodeBin = (args: readonly string[], env: NodeJS.ProcessEnv = {}, input?: string) =>
  execa(process.execPath, [NODE_CLI, ...args], { reject: false, env: { ...process.env, ...env }, extendEnv: false, timeout: 30_000, ...(input !== undefined ? { input } : {}) });

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

describe('a large configuration, run by the entrypoint itself', () => {
  it('9,000 CIDRs (8,000 captured, 1,000 excluded) and 1,000 inbound ports: past the runtime arena, into the C allocator; the same dry run', async () => {
    const cidrs = Array.from({ length: 8000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`);
    const env = { ISTIO_SERVICE_CIDR: cidrs.join(',') };
    const args = ['-p', '15001', '-b', Array.from({ length: 1000 }, (_, i) => 1000 + i).join(','), '-x', cidrs.slice(0, 1000).map((c) => c.replace(/^10\./, '11.')).join(','), '--enable-ipv6=false', '--dry-run'];
    const node = await viaNode(args, env);
    expect(node.code).toBe(0);
    const entry = await execa(ENTRYPOINT_TRACE, args, { reject: false, env: { ...process.env, ...env }, timeout: 60_000 });
    expect(entry.exitCode, entry.stderr).toBe(0);
    expect(entry.stderr).toMatch(/program evaluated/); // run here, on this runtime
    expect(entry.stdout.split('\n').length).toBeGreaterThan(10_000);
    expect(entry.stdout).toBe(node.stdout.replace(/\n$/, ''));
  });
});

describe('help, errors and trace from the entrypoint equal the Node CLI\'s', () => {
  it.each([[['--help']], [['istio-iptables', '-h']], [['trace', '--help']], [['diff', '--help']]])('%j: the same usage, exit 0', async (args) => {
    // The locale variables change neither: help is English (yargs ships French, German, ... too).
    const french = { LC_ALL: 'fr_FR.UTF-8', LANG: 'fr_FR.UTF-8' };
    const [node, entry, nodeFr] = await Promise.all([viaNodeBin(args), viaEntrypoint(args), viaNodeBin(args, french)]);
    expect(node.exitCode, node.stderr).toBe(0);
    expect(entry.exitCode, entry.stderr).toBe(0);
    expect(entry.stdout).toMatch(/Usage: istio-iptables/);
    expect(entry.stdout).toMatch(/Options:/);
    expect(entry.stdout).toBe(node.stdout);
    expect(entry.stderr).toBe(node.stderr);
    expect(nodeFr.stdout).toBe(node.stdout);
  });

  it.each([
    [['istio-iptables', '-p', '15001', '--no-such-flag', '--dry-run'], 'istio-iptables: unknown flag --no-such-flag (see --help)'],
    [['-p', '15001', 'stray', '--dry-run'], 'istio-iptables: unexpected argument "stray": only flags are taken here (see --help)'],
    [['--dry-run', '-p'], 'istio-iptables: flag needs an argument: -p/--envoy-port'],
    [['--redirect-dns=maybe', '--dry-run'], 'istio-iptables: invalid value "maybe" for --redirect-dns: expected true or false'],
    [['trace', '-b', '*', 'sideways', 'tcp', '1.2.3.4', '->', '5.6.7.8:80'], /sideways|direction/],
  ])('%j: the same error, exit 1, nothing on stdout', async (args, message) => {
    const [node, entry] = await Promise.all([viaNodeBin(args), viaEntrypoint(args)]);
    expect(entry.exitCode).toBe(1);
    expect(node.exitCode).toBe(1);
    expect(entry.stdout).toBe('');
    if (typeof message === 'string') expect(entry.stderr).toBe(message);
    else expect(entry.stderr).toMatch(message);
    expect(entry.stderr).toBe(node.stderr);
  });

  it('trace: a flow walked through the plan, text and JSON, the same as Node\'s', async () => {
    const args = ['trace', '-p', '15001', '-z', '15006', '-m', 'TPROXY', '-b', '*', '-i', '*', '--enable-ipv6=true'];
    for (const flow of [
      ['inbound', 'tcp', '10.1.1.1:40000', '->', '10.0.0.5:8080'],
      ['outbound', 'tcp', 'fd00::5', '->', '[2001:db8::1]:443', 'uid=1337'],
    ]) {
      for (const output of [[], ['--output', 'json']]) {
        const [node, entry] = await Promise.all([viaNode([...args, ...output, ...flow]), viaEntrypoint([...args, ...output, ...flow])]);
        expect(node.code, node.stderr).toBe(0);
        expect(entry.exitCode, entry.stderr).toBe(0);
        expect(entry.stdout.length).toBeGreaterThan(0);
        expect(entry.stdout).toBe(node.stdout.replace(/\n$/, ''));
      }
    }
  });

  it('trace --flows from a file and from stdin: the same JSON lines as Node\'s', async () => {
    const flows = [
      { direction: 'inbound', protocol: 'tcp', src: '10.1.1.1', sport: 40000, dst: '10.0.0.5', dport: 8080 },
      { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', sport: 40001, dst: '93.184.216.34', dport: 443, uid: 1000 },
      { direction: 'outbound', protocol: 'udp', src: '10.0.0.5', sport: 40002, dst: '10.96.0.10', dport: 53 },
    ]
      .map((f) => JSON.stringify(f))
      .join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'iit-flows-'));
    try {
      const file = join(dir, 'flows.jsonl');
      writeFileSync(file, `${flows}\n`);
      const args = ['trace', '-p', '15001', '-z', '15006', '-b', '*', '-i', '*', '--redirect-dns', '--dns-servers', '10.96.0.10', '--enable-ipv6=false', '--output', 'json'];
      const node = await viaNodeBin([...args, '--flows', file]);
      expect(node.exitCode, node.stderr).toBe(0);
      expect(node.stdout.split('\n')).toHaveLength(3);
      const [fromFile, fromStdin] = await Promise.all([viaEntrypoint([...args, '--flows', file]), execa(ENTRYPOINT, [...args, '--flows', '-'], { reject: false, input: `${flows}\n`, timeout: 30_000 })]);
      expect(fromFile.exitCode, fromFile.stderr).toBe(0);
      expect(fromFile.stdout).toBe(node.stdout);
      expect(fromStdin.exitCode, fromStdin.stderr).toBe(0);
      expect(fromStdin.stdout).toBe(node.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('trace for people and CI, --explain and the pictures: both programs give the same stdout and exit code', () => {
  const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-b', '*', '-d', '15090', '--enable-ipv6=false'];
  const APP = ['uid=1000', 'gid=1000'];
  const flows = [
    { direction: 'outbound', protocol: 'TCP', src: '10.0.0.5', dst: '93.184.216.34', dport: 443, uid: 1000, expect: 'redirect:15001' },
    { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', dst: 'example.com', dport: 443 },
    { direction: 'inbound', protocol: 'tcp', src: '10.1.1.1', dst: '10.0.0.5', dport: 15090 },
    { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', dst: '93.184.216.34', dport: 443, uid: 1000 },
  ]
    .map((f) => JSON.stringify(f))
    .join('\n');
  const cases: [string, readonly string[], string?][] = [
    ['protocol in any case, "to"', ['trace', ...SIDECAR, 'outbound', 'TCP', '10.0.0.5', 'to', '93.184.216.34:443', ...APP]],
    ['no arrow', ['trace', ...SIDECAR, 'inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080']],
    ['an excluded port names -d', ['trace', ...SIDECAR, 'inbound', 'tcp', '10.1.1.1', '10.0.0.5:15090']],
    ['--expect met', ['trace', ...SIDECAR, '--expect', 'redirect:15001', 'outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP]],
    ['--expect unmet', ['trace', ...SIDECAR, '--expect', 'pass', 'outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP]],
    ['--expect not a verdict', ['trace', ...SIDECAR, '--expect', 'maybe', 'outbound', 'tcp', '10.0.0.5', '93.184.216.34:443']],
    ['--verbose', ['trace', ...SIDECAR, '--verbose', 'outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP]],
    ['--flows: defaults, a bad line, an unmet expect', ['trace', ...SIDECAR, '--in', 'eth1', '--expect', 'pass', '--flows', '-'], flows],
    ['--output json', ['trace', ...SIDECAR, '-m', 'TPROXY', '--output', 'json', 'inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080']],
    ['--output svg', ['trace', ...SIDECAR, '-m', 'TPROXY', '--output', 'svg', '--local', '10.0.0.5', 'inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080']],
    ['--output mermaid', ['trace', ...SIDECAR, '--output', 'mermaid', 'outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP]],
    ['--output svg with --flows', ['trace', ...SIDECAR, '--output', 'svg', '--flows', '-'], flows],
    ['--dry-run --explain', [...SIDECAR, '-m', 'TPROXY', '--dry-run', '--explain']],
    ['--dry-run --explain --output json', [...SIDECAR, '--dry-run', '--explain', '--output', 'json']],
    ['--dry-run --explain, nft sets', [...SIDECAR, '-x', '10.96.0.0/12,192.168.0.0/16', '--native-nftables', '--nft-sets', '--dry-run', '--explain']],
    ['--dry-run --output svg', [...SIDECAR, '-m', 'TPROXY', '--dry-run', '--output', 'svg']],
    ['--dry-run --output mermaid', [...SIDECAR, '--dry-run', '--output', 'mermaid']],
  ];
  it.each(cases)('%s', async (_name, args, input) => {
    const opts = { reject: false, env: { PATH: process.env.PATH ?? '' }, extendEnv: false, timeout: 30_000, ...(input === undefined ? {} : { input }) } as const;
    const [node, entry] = await Promise.all([execa(process.execPath, [NODE_CLI, ...args], opts), execa(ENTRYPOINT, [...args], opts)]);
    expect(node.stdout.length + node.stderr.length).toBeGreaterThan(0);
    expect(entry.exitCode).toBe(node.exitCode);
    expect(entry.stdout).toBe(node.stdout);
    expect(entry.stderr).toBe(node.stderr);
  });
});

describe('no environment variable changes what code runs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iit-env-'));
  const marker = join(dir, 'ran');
  const script = join(dir, 'require.cjs');
  writeFileSync(script, `require('fs').writeFileSync(${JSON.stringify(marker)}, 'node')\n`);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** Variables other runtimes and engines act on, each set to run code or change behaviour if anything read it. */
  const HOSTILE: NodeJS.ProcessEnv = {
    BUN_BE_BUN: '1',
    BUN_OPTIONS: `--print=require("fs").writeFileSync(${JSON.stringify(marker)},"bun")`,
    BUN_CONFIG_VERBOSE_FETCH: '1',
    NODE_OPTIONS: `--require=${script}`,
    NODE_DEBUG: 'net,child_process',
    QJS_MODULE_PATH: '/nonexistent',
    QJS_OPTIONS: '--eval=1',
    QUICKJS_OPTIONS: '--std',
    YARGS_DISABLE_WRAP: '1',
    LANG: 'de_DE.UTF-8',
    LC_ALL: 'fr_FR.UTF-8',
    ISTIO_IPTABLES_TRACE_RUNTIME: '1',
    ISTIO_IPTABLES_RUNTIME_NO_PREFAULT: '1',
  };
  const CLEAN: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  const run = (args: readonly string[], env: NodeJS.ProcessEnv) => execa(ENTRYPOINT, [...args], { reject: false, env, extendEnv: false, timeout: 30_000 });

  it.each([
    ['a dry run', ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-b', '*', '-i', '*', '--enable-ipv6=true', '--dry-run']],
    ['--help', ['--help']],
    ['an error', ['-p', '15001', '--no-such-flag']],
    ['a bad value', ['-p', 'abc', '--dry-run']],
    ['trace', ['trace', '-b', '*', 'inbound', 'tcp', '10.1.1.1:4000', '->', '10.0.0.5:80']],
  ])('%s: identical stdout, stderr and exit code, and nothing of theirs runs', async (_n, args) => {
    rmSync(marker, { force: true });
    const [clean, hostile] = await Promise.all([run(args, CLEAN), run(args, { ...CLEAN, ...HOSTILE })]);
    expect(hostile.exitCode).toBe(clean.exitCode);
    expect(hostile.stdout).toBe(clean.stdout);
    expect(hostile.stderr).toBe(clean.stderr);
    expect(hostile.stdout + hostile.stderr).not.toMatch(/^runtime\t/m);
    expect(existsSync(marker)).toBe(false);
  });

  it('the hostile environment is live: under Node, NODE_OPTIONS runs its script (so the check above could fail)', async () => {
    rmSync(marker, { force: true });
    await execa(process.execPath, ['-e', '0'], { env: { ...CLEAN, NODE_OPTIONS: HOSTILE.NODE_OPTIONS }, extendEnv: false });
    expect(readFileSync(marker, 'utf8')).toBe('node');
  });

  it('the binary names none of these variables (the runtime reads none; the engine has no getenv)', () => {
    const text = readFileSync(ENTRYPOINT).toString('latin1');
    for (const name of ['ISTIO_IPTABLES_TRACE_RUNTIME', 'ISTIO_IPTABLES_RUNTIME_NO_PREFAULT', 'BUN_', 'QJS_', 'NODE_OPTIONS']) expect(text).not.toContain(name);
    // Nor the C library's: a static glibc reads GLIBC_TUNABLES at start-up (which can choose the
    // string functions it runs); the entrypoint is linked with musl, which has no such variable.
    expect(text).not.toContain('GLIBC_TUNABLES');
  });
});

describe('the runtime', () => {
  it('built with its step timing (a build-time option), reports its steps with times on stderr', async () => {
    const r = await execa(ENTRYPOINT_TRACE, ['-p', '15001', '--dry-run'], { reject: false });
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

  it('reads the parser (yargs) and trace scripts only when asked: not on a dry run', async () => {
    const dry = await execa(ENTRYPOINT_TRACE, ['-p', '15001', '--dry-run'], { reject: false });
    expect(dry.exitCode).toBe(0);
    expect(dry.stderr).toMatch(/loading script 0\b/); // extra: the dry-run renderer
    expect(dry.stderr).not.toMatch(/loading script [12]\b/);
    const help = await execa(ENTRYPOINT_TRACE, ['--help'], { reject: false });
    expect(help.stderr).toMatch(/loading script 1\b/);
    const trace = await execa(ENTRYPOINT_TRACE, ['trace', '-b', '*', 'inbound', 'tcp', '10.1.1.1:4000', '->', '10.0.0.5:80'], { reject: false });
    expect(trace.exitCode, trace.stderr).toBe(0);
    expect(trace.stderr).toMatch(/loading script 2\b/);
  });
});

describe('the build', () => {
  it('without musl-gcc, fails before compiling anything and says what to install', async () => {
    // A PATH with node and nothing else: no musl-gcc (nor gcc).
    const bin = mkdtempSync(join(tmpdir(), 'iit-nomusl-'));
    try {
      symlinkSync(process.execPath, join(bin, 'node'));
      const r = await execa(join(bin, 'node'), [join(ROOT, 'scripts/build-entrypoint.mjs')], { reject: false, env: { PATH: bin }, extendEnv: false, timeout: 60_000 });
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain("musl-gcc not found: the entrypoint is linked with musl; install Debian's musl-tools (apt-get install musl-tools)");
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
