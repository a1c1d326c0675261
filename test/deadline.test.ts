import { describe, expect, it } from 'vitest';
import { commandBound, runDeadline, UNDO_MS } from '../src/apply/commands.js';
import { processRunner } from '../src/platform/node/runner.js';

/**
 * One deadline per run (apply/commands.ts RunDeadline): what is left of it bounds every command;
 * past it nothing new starts, except the undoing of the run's changes, which gets UNDO_MS.
 */
describe('the run deadline', () => {
  const clock = () => {
    let t = 1000;
    return { now: () => t, advance: (ms: number) => void (t += ms) };
  };

  it('bounds commands by what is left, and passes', () => {
    const c = clock();
    const d = runDeadline(5000, c.now);
    expect(d.left()).toBe(5000);
    expect(commandBound(60_000, d)).toBe(5000);
    expect(commandBound(2000, d)).toBe(2000);
    expect(commandBound(2000, undefined)).toBe(2000);
    c.advance(4999);
    expect(d.passed()).toBe(false);
    expect(commandBound(60_000, d)).toBe(1);
    c.advance(1);
    expect(d.passed()).toBe(true);
    expect(commandBound(60_000, d)).toBe(0);
  });

  it('gives undoing UNDO_MS from when it began (or until the deadline, when later), and only while it lasts', async () => {
    const c = clock();
    const d = runDeadline(5000, c.now);
    await d.undoing(async () => expect(d.left()).toBe(UNDO_MS));
    const long = runDeadline(UNDO_MS * 2, c.now);
    await long.undoing(async () => expect(long.left()).toBe(UNDO_MS * 2));
    c.advance(6000);
    expect(d.left()).toBeLessThanOrEqual(0);
    const inside = await d.undoing(async () => {
      const first = d.left();
      c.advance(1000);
      // Nested (an undo inside a rollback) keeps the outer window.
      const nested = await d.undoing(async () => d.left());
      return [first, nested];
    });
    expect(inside).toEqual([UNDO_MS, UNDO_MS - 1000]);
    // Done undoing: nothing new starts.
    expect(d.left()).toBeLessThanOrEqual(0);
    // Undoing just before the deadline gets the whole undo window.
    const late = runDeadline(5000, c.now);
    c.advance(4900);
    expect(await late.undoing(async () => late.left())).toBe(UNDO_MS);
  });

  it('a command is cut at the deadline (said so), and one after it is not started', async () => {
    const runner = processRunner(undefined, { timeoutMs: 10_000, deadline: runDeadline(400) });
    const cut = await runner.run(['sh', '-c', "trap '' TERM; cat >/dev/null; sleep 6"], 'x');
    expect(cut.exitCode).toBe(124);
    expect(cut.stderr).toMatch(/^timed out after \d+ ms, at the run's deadline/);
    const after = await runner.run(['true']);
    expect(after).toEqual({ exitCode: 124, stdout: '', stderr: "not started: the run's deadline (400 ms) had passed", notFound: false });
  });

  it('past the deadline, a command that undoes runs', async () => {
    const deadline = runDeadline(50);
    const runner = processRunner(undefined, { deadline });
    await new Promise((r) => setTimeout(r, 100));
    expect((await runner.run(['true'])).exitCode).toBe(124);
    const undo = await deadline.undoing(() => runner.run(['sh', '-c', 'echo undone']));
    expect(undo.exitCode).toBe(0);
    expect(undo.stdout).toBe('undone');
  });
});
