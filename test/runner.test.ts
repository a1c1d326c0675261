import { describe, expect, it } from 'vitest';
import { processRunner } from '../src/platform/node/runner.js';

/**
 * The Node runners against children that fail the way real programs do: exit before reading their
 * stdin (EPIPE on our side), read part of it, die by a signal, hang ignoring SIGTERM, or exit
 * while something they started keeps the pipes open. Each is a result (never an error event,
 * never a wait without end), with a short bound here (the CLI's is 60 s).
 */
const BIG = `${'-A OUTPUT -p tcp -j RETURN\n'.repeat(20_000)}`; // ~540 KB: more than a pipe holds
const RUNNERS = [['execa (processRunner)', processRunner(undefined, { timeoutMs: 500 })]] as const;

describe.each(RUNNERS)('%s', (_name, runner) => {
  it('a child that exits before reading its input: its exit code, no EPIPE error', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await runner.run(['sh', '-c', 'echo refused >&2; exit 3'], BIG);
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain('refused');
    }
  });

  it('a child that reads part of its input and exits', async () => {
    const r = await runner.run(['sh', '-c', 'head -c 1000 >/dev/null; exit 4'], BIG);
    expect(r.exitCode).toBe(4);
  });

  it('a child killed by a signal is a failure', async () => {
    const r = await runner.run(['sh', '-c', 'kill -9 $$'], BIG);
    expect(r.exitCode).not.toBe(0);
  });

  it('a child that ignores SIGTERM is killed, and pipes held by its own child do not hold the result', async () => {
    const r = await runner.run(['sh', '-c', "trap '' TERM; cat >/dev/null; sleep 6"], 'x');
    expect(r.exitCode).toBe(124);
    expect(r.stderr).toMatch(/^timed out after 500 ms/);
  });

  it('a child that exits while a process it started keeps its pipes open: the result comes anyway', async () => {
    const r = await runner.run(['sh', '-c', 'sleep 6 & echo done; exit 5']);
    expect(r.exitCode).toBe(5);
    expect(r.stdout.trim()).toBe('done');
  });

  it('a program that does not exist', async () => {
    const r = await runner.run(['/nonexistent/istio-iptables-test-program']);
    expect(r.exitCode).not.toBe(0);
    expect(r.notFound).toBe(true);
  });
});
