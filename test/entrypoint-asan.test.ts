import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { conformanceCases, ROOT } from './support/cli.js';
import { MODES } from './support/modes.js';

/**
 * The entrypoint's runtime (native/host.c) built with AddressSanitizer and UBSan
 * (`npm run build:entrypoint -- --sanitize`, without the arena so every allocation is checked)
 * runs what the entrypoint's tests run: every golden mode and conformance case as a dry run
 * (text and JSON), from flags and from the environment, errors, and output that cannot be
 * written; the help and the parser (yargs: --help, unknown flags), trace (single flows and
 * --flows), and --nft-sets over IPv6 ranges with the top bit set (BigInt arithmetic and its
 * string forms, CVE-2025-62493's path); its output must be the regular entrypoint's, with no
 * sanitizer report. (The fault suite, test/kernel/faults.test.ts, applies with it in namespaces,
 * children failing.) The options are set here, not taken from the environment, and any finding
 * fails the run: the report on stderr, and the exit code the options give it.
 */
const ASAN = join(ROOT, 'dist/entrypoint-asan/istio-iptables');
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const SANITIZER_ENV = { ASAN_OPTIONS: 'halt_on_error=1:exitcode=99:detect_leaks=0', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=98' };
const REPORT = /AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:/;

const run = (bin: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, shell?: string, input?: string) =>
  shell === undefined
    ? execa(bin, [...args], { reject: false, env: { PATH: process.env['PATH'] ?? '', ...SANITIZER_ENV, ...env }, extendEnv: false, timeout: 60_000, ...(input === undefined ? {} : { input }) })
    : execa('sh', ['-c', shell, 'sh', bin, ...args], { reject: false, env: { PATH: process.env['PATH'] ?? '', ...SANITIZER_ENV, ...env }, extendEnv: false, timeout: 60_000 });

/** The sanitized entrypoint and the regular one on the same arguments: no report, the same exit code, stdout and stderr. */
async function same(args: readonly string[], input?: string) {
  const [plain, asan] = await Promise.all([run(ENTRYPOINT, args, {}, undefined, input), run(ASAN, args, {}, undefined, input)]);
  expect(asan.stderr).not.toMatch(REPORT);
  expect(asan.exitCode, asan.stderr).toBe(plain.exitCode);
  expect(asan.stdout).toBe(plain.stdout);
  expect(asan.stderr).toBe(plain.stderr);
  return asan;
}

const cases: [string, readonly string[]][] = [
  ...Object.entries(MODES).map(([name, args]) => [`mode ${name}`, args] as [string, readonly string[]]),
  ...conformanceCases().map((c) => [`${c.suite} ${c.name}`, c.args] as [string, readonly string[]]),
];

describe('the entrypoint under ASan and UBSan', () => {
  it('is a sanitizer build (the check below would catch a report)', async () => {
    const r = await execa('sh', ['-c', `nm -D ${ASAN} | grep -c __asan_init; nm -D ${ASAN} | grep -c __ubsan_handle`], { reject: false });
    const [asan, ubsan] = r.stdout.split('\n').map(Number);
    expect(asan).toBeGreaterThan(0);
    expect(ubsan).toBeGreaterThan(0);
  });

  it.each(cases)('%s: the same dry run as the entrypoint, clean (text and json)', async (_n, args) => {
    for (const format of ['text', 'json']) {
      const dry = [...args, '--dry-run', '--output', format];
      const [plain, asan] = await Promise.all([run(ENTRYPOINT, dry), run(ASAN, dry)]);
      expect(asan.stderr).not.toMatch(REPORT);
      expect(asan.exitCode, asan.stderr).toBe(0);
      expect(asan.stdout).toBe(plain.stdout);
      expect(asan.stderr).toBe(plain.stderr);
    }
  });

  it('from environment variables, and with an invalid value', async () => {
    const env = { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_PORTS: '*', ISTIO_SERVICE_CIDR: '*', ENABLE_IPV6: 'true' };
    const ok = await run(ASAN, ['istio-iptables', '-p', '15001', '--dry-run', '--output', 'json'], env);
    expect(ok.stderr).not.toMatch(REPORT);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toBe((await run(ENTRYPOINT, ['istio-iptables', '-p', '15001', '--dry-run', '--output', 'json'], env)).stdout);
    const bad = await run(ASAN, ['istio-iptables', '-b', '80x', '--dry-run']);
    expect(bad.stderr).not.toMatch(REPORT);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/invalid value "80x" for -b\/--istio-inbound-ports/);
  });

  it('closed stdio, a full disk, a file-descriptor limit: clean, and failing where output is lost', async () => {
    const dry = ['istio-iptables', '-m', 'TPROXY', '-b', '*', '-i', '*', '--dual-stack', '--dry-run'];
    const closed = await run(ASAN, dry, {}, 'exec "$@" <&- >&- 2>&-');
    expect(closed.exitCode).toBe(0);
    const full = await run(ASAN, dry, {}, 'exec "$@" >/dev/full');
    expect(full.stderr).not.toMatch(REPORT);
    expect(full.exitCode).toBe(1);
    expect(full.stderr).toMatch(/cannot write to stdout: No space left on device/);
    // (With 3 descriptors the dynamic loader cannot load libasan; with 4 the run has one to spare.)
    const reference = await run(ENTRYPOINT, dry);
    for (const n of [4, 5, 6]) {
      const limited = await run(ASAN, dry, {}, `exec prlimit --nofile=${n} "$@"`);
      expect(limited.stderr).not.toMatch(REPORT);
      if (limited.exitCode === 0) expect(limited.stdout).toBe(reference.stdout);
    }
  });
});

describe('help, the parser, trace and --nft-sets under ASan and UBSan', () => {
  it.each([[['--help']], [['-h']], [['istio-iptables', '--help']], [['trace', '--help']], [['diff', '--help']]])('%j: the usage, exit 0, clean', async (args) => {
    const r = await same(args);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^Usage: istio-iptables/);
  });

  it.each([
    [['istio-iptables', '-p', '15001', '--no-such-flag', '--dry-run'], /^istio-iptables: unknown flag --no-such-flag \(see --help\)$/],
    [['--dry-run', '-Q'], /^istio-iptables: unknown shorthand flag "Q" in -Q \(did you mean -q\?\)$/],
    [['-p', '15001', 'stray', '--dry-run'], /^istio-iptables: unexpected argument "stray": only flags are taken here/],
    [['--dry-run', '-p'], /flag needs an argument: -p\/--envoy-port/],
    [['--redirect-dns=maybe', '--dry-run'], /invalid value "maybe" for --redirect-dns/],
    [['trace', '--no-such-flag', 'inbound', 'tcp', '10.1.1.1', '->', '10.0.0.5:80'], /no-such-flag/],
    [['trace', '-b', '*', 'sideways', 'tcp', '1.2.3.4', '->', '5.6.7.8:80'], /sideways|direction/],
  ])('%j: the error, exit 1, nothing on stdout, clean', async (args, message) => {
    const r = await same(args);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  const traceArgs = ['trace', '-p', '15001', '-z', '15006', '-m', 'TPROXY', '-b', '*', '-i', '*', '-x', 'fd00:1::/64,fe80::/10', '--enable-ipv6=true'];
  it.each([
    [['inbound', 'tcp', '10.1.1.1:40000', '->', '10.0.0.5:8080']],
    [['outbound', 'tcp', 'fd00::5', '->', '[2001:db8::1]:443', 'uid=1337']],
    [['outbound', 'udp', 'fd00::5', '->', '[fd00:1::53]:53']],
    [['inbound', 'tcp', '[fe80::1]:40000', '->', '[fd00::5]:8080', 'in=eth0']],
  ])('trace %j: text and JSON, the same walk, clean', async (flow) => {
    for (const output of [[], ['--output', 'json']]) {
      const r = await same([...traceArgs, ...output, ...flow]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.length).toBeGreaterThan(0);
    }
  });

  it('trace --flows from a file and from stdin, IPv4 and IPv6: the same JSON lines, clean', async () => {
    const flows = [
      { direction: 'inbound', protocol: 'tcp', src: '10.1.1.1', sport: 40000, dst: '10.0.0.5', dport: 8080 },
      { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', sport: 40001, dst: '93.184.216.34', dport: 443, uid: 1000 },
      { direction: 'outbound', protocol: 'udp', src: 'fd00::5', sport: 40002, dst: 'fd00:1::a', dport: 53 },
      { direction: 'inbound', protocol: 'tcp', src: 'fe80::1', sport: 40003, dst: 'ff02::1', dport: 80 },
      { direction: 'outbound', protocol: 'tcp', src: 'fd00::5', sport: 40004, dst: '2001:db8::1', dport: 443, uid: 1337, gid: 1337 },
    ]
      .map((f) => JSON.stringify(f))
      .join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'iit-asan-flows-'));
    try {
      const file = join(dir, 'flows.jsonl');
      writeFileSync(file, `${flows}\n`);
      const fromFile = await same([...traceArgs, '--output', 'json', '--flows', file]);
      expect(fromFile.exitCode, fromFile.stderr).toBe(0);
      expect(fromFile.stdout.split('\n')).toHaveLength(5);
      const fromStdin = await same([...traceArgs, '--output', 'json', '--flows', '-'], `${flows}\n`);
      expect(fromStdin.exitCode, fromStdin.stderr).toBe(0);
      expect(fromStdin.stdout).toBe(fromFile.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Set keys are BigInt prefixes written with toString(16): a prefix of fc00::/7, fe80::/10 or
  // ff00::/8 has its top bit set, which QuickJS 2025-04-26 mis-sized (CVE-2025-62493; patched).
  const nftSets = ['-b', '*', '--enable-ipv6', '--native-nftables', '--nft-sets', '--dry-run'];
  it.each([
    ['the issue\'s case', ['-i', '*', '-x', 'fd00:1::/64']],
    ['excluded ranges', ['-i', '*', '-x', 'fc00::/7,fe80::/10,ff00::/8,fd00:1::/64,fd00:2::/64,2001:db8::/32,10.0.0.0/8,128.0.0.0/1']],
    ['included ranges, some covering others', ['-i', 'fc00::/7,fd00::/8,fd00:1::/64,fe80::/10,ff00::/8,ff02::1/128,2001:db8::/32,255.255.255.255/32']],
    ['TPROXY, both families, ports as sets too', ['-m', 'TPROXY', '-i', 'fe80::/10,ff00::/8,fd00::/8', '-x', 'fd00:1::/64,fdff:ffff:ffff:ffff::/64', '-d', '15090,15021,15020', '-o', '53,8443']],
  ])('%s: the same nft script as the Node CLI, clean', async (_n, args) => {
    const r = await same([...nftSets, ...args]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ip6 daddr \{/);
    const node = await execa(process.execPath, [join(ROOT, 'bin/istio-iptables.js'), ...nftSets, ...args], { reject: false, timeout: 60_000 });
    expect(node.exitCode, node.stderr).toBe(0);
    expect(r.stdout).toBe(node.stdout);
  });
});
