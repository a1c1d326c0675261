import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/cli.js';

/**
 * The entrypoint's runtime (native/host.c) fails closed where no input of the CLI reaches: a
 * promise rejected with nobody to handle it, an exception in a callback of its event loop, a
 * poll() that fails. Each case is the runtime built with a small program of its own in place of
 * the CLI (scripts/build-entrypoint.mjs --runtime-test; never shipped).
 */

const PROGRAMS = {
  unhandled: "Promise.reject(new Error('nobody awaits this'));",
  handledLate: [
    "const p = Promise.reject(new Error('handled later'));",
    "__host.wait(-1, 'r', 20, () => { p.catch(() => __host.write(1, 'caught\\n')); });",
  ].join('\n'),
  inCallback: "__host.wait(-1, 'r', 1, () => { throw new Error('thrown in a callback'); });",
  // More poll entries than the open-files limit allows (run under prlimit): poll() fails with
  // EINVAL. A child started before must not outlive the run.
  pollFails: [
    "const pid = __host.spawn(['sleep', '30'], null, null, 60000, () => {});",
    "__host.write(1, `${pid}\\n`);",
    "for (let i = 0; i < 40; i++) __host.wait(1, 'w', 60000, () => {});",
  ].join('\n'),
} as const;

const dir = mkdtempSync(join(tmpdir(), 'iit-runtime-'));
const bin = (name: keyof typeof PROGRAMS): string => join(dir, name);

beforeAll(async () => {
  await Promise.all(
    Object.entries(PROGRAMS).map(async ([name, program]) => {
      writeFileSync(join(dir, `${name}.js`), program);
      await execa('node', [join(ROOT, 'scripts/build-entrypoint.mjs'), '--runtime-test', join(dir, `${name}.js`), join(dir, name)], { timeout: 120_000 });
    }),
  );
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (argv: readonly string[]) => execa(argv[0] ?? '', argv.slice(1), { reject: false, timeout: 15_000 });

/** A process's state letter from /proc (R, S, Z, ...), or undefined once it is gone. */
function state(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

describe('the runtime fails closed', () => {
  it('a rejection nobody handles: exit 1, reported with its reason', async () => {
    const r = await run([bin('unhandled')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^istio-iptables: unhandled promise rejection\nistio-iptables: internal error: Error: nobody awaits this/);
  });

  it('a rejection handled before the event loop ends is not one: exit 0', async () => {
    const r = await run([bin('handledLate')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('caught');
    expect(r.exitCode).toBe(0);
  });

  it('an exception in a callback of the event loop: exit 1, reported', async () => {
    const r = await run([bin('inCallback')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^istio-iptables: internal error: Error: thrown in a callback/);
  });

  it('poll() failing: exit 1 at once, named, and the running child killed', async () => {
    const r = await run(['prlimit', '--nofile=16', bin('pollFails')]);
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('istio-iptables: internal error: poll: Invalid argument');
    const pid = Number(r.stdout.trim());
    expect(pid).toBeGreaterThan(0);
    // SIGKILLed before the runtime exited: gone, or a zombie left to whoever adopts it.
    for (let i = 0; i < 50 && !['Z', undefined].includes(state(pid)); i++) await new Promise((res) => setTimeout(res, 40));
    expect(['Z', undefined]).toContain(state(pid));
  });
});
