import type { ChildProcess } from 'node:child_process';
import { childEnv, commandBound, commandResult, DEFAULT_TIMEOUT_MS, KILL_GRACE_MS, notStarted, PIPE_GRACE_MS, type Runner } from '../../apply/commands.js';
import type { Namespace, RunnerOptions } from '../platform.js';

/**
 * Bounds on a started child, whatever it does: SIGTERM at the timeout, SIGKILL KILL_GRACE_MS
 * later, and once it has exited its output pipes closed after PIPE_GRACE_MS even if a process it
 * left behind holds them. A child that dies before reading its stdin (EPIPE) is a failed command,
 * not an error event. Returns a function that stops the timers.
 */
function bound(child: ChildProcess, timeout: number, onTimeout: () => void): () => void {
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  const later = (ms: number, fn: () => void) => void (stopped || timers.push(setTimeout(fn, ms)));
  const closePipes = () => {
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.stdin?.destroy();
  };
  child.stdin?.on('error', () => {});
  later(timeout, () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    onTimeout();
    child.kill('SIGTERM');
    later(KILL_GRACE_MS, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      later(PIPE_GRACE_MS, closePipes);
    });
  });
  child.on('exit', () => later(PIPE_GRACE_MS, closePipes));
  return () => {
    stopped = true;
    timers.forEach(clearTimeout);
  };
}

/**
 * Where a child of ours enters a namespace Node cannot enter itself: nsenter, given the namespace
 * as the descriptor we opened and checked (the child's fd 3, reopened through /proc/self/fd: the
 * same namespace, never the path again).
 */
export const NSENTER = ['nsenter', '--net=/proc/self/fd/3', '--'];

/** A descriptor of ours as a child's stdio entry (execa passes any number through; its types list only 3 to 9). */
export const passFd = (fd: number): 3 => fd as 3;

/**
 * Commands run with execa (loaded on first use), the payload fed on stdin, inside the namespace
 * when one is given (nsenter, with the namespace's descriptor as the child's fd 3), each bounded
 * by its timeout and what is left of the run's deadline. What is not the spawn (the result's
 * shape, the bounds) is shared with the entrypoint's runner (apply/commands.ts).
 */
export function processRunner(ns: Namespace | undefined, options: RunnerOptions = {}): Runner {
  const prefix = ns === undefined ? [] : NSENTER;
  const own = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { deadline } = options;
  return {
    async run(argv, input) {
      const timeout = commandBound(own, deadline);
      if (deadline !== undefined && timeout <= 0) return notStarted(deadline);
      const { execa } = await import('execa');
      const full = [...prefix, ...argv];
      let timedOut = false;
      const stdin = input === undefined ? 'ignore' : 'pipe';
      const child = execa(full[0] ?? '', full.slice(1), {
        reject: false,
        // Our own bound() sends SIGTERM and SIGKILL and closes pipes left open; execa's only the first two.
        timeout: timeout + KILL_GRACE_MS + PIPE_GRACE_MS,
        forceKillAfterDelay: KILL_GRACE_MS,
        // Only PATH and the xtables lock file reach the command (commands.ts CHILD_ENV).
        env: childEnv({ ...process.env, ...options.env }),
        extendEnv: false,
        ...(input === undefined ? {} : { input }),
        stdio: ns === undefined ? [stdin, 'pipe', 'pipe'] : [stdin, 'pipe', 'pipe', passFd(ns.fd)],
      });
      const stop = bound(child, timeout, () => void (timedOut = true));
      const r = await child.finally(stop);
      return commandResult(
        {
          exitCode: r.exitCode ?? -1,
          stdout: typeof r.stdout === 'string' ? r.stdout : '',
          stderr: typeof r.stderr === 'string' ? r.stderr : '',
          timedOut: timedOut || r.timedOut,
          spawnError: (r as { code?: string }).code,
          ...(r.exitCode === undefined ? { failure: String(r.message) } : {}),
        },
        prefix,
        timeout,
        own,
      );
    },
  };
}
