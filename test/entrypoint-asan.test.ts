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
 * written; its output must be the regular entrypoint's, with no sanitizer report. (The fault
 * suite, test/kernel/faults.test.ts, applies with it in namespaces, children failing.) The
 * options are set here, not taken from the environment, and any finding fails the run.
 */
const ASAN = join(ROOT, 'dist/entrypoint-asan/istio-iptables');
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const SANITIZER_ENV = { ASAN_OPTIONS: 'halt_on_error=1:exitcode=99:detect_leaks=0', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=98' };
const REPORT = /AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:/;

const run = (bin: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, shell?: string) =>
  shell === undefined
    ? execa(bin, [...args], { reject: false, env: { PATH: process.env['PATH'] ?? '', ...SANITIZER_ENV, ...env }, extendEnv: false, timeout: 60_000 })
    : execa('sh', ['-c', shell, 'sh', bin, ...args], { reject: false, env: { PATH: process.env['PATH'] ?? '', ...SANITIZER_ENV, ...env }, extendEnv: false, timeout: 60_000 });

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
