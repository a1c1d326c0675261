import type { ChildProcess } from 'node:child_process';
import { commandResult, DEFAULT_TIMEOUT_MS, KILL_GRACE_MS, lockName, PIPE_GRACE_MS, prefixFor, type ProcessRunnerOptions, type Runner } from './commands.js';
import type { RouteBackend } from './routes.js';

export { DEFAULT_TIMEOUT_MS, type ProcessRunnerOptions, type Runner, type RunResult } from './commands.js';

/**
 * Routing done by the runtime itself rather than by `ip`: none under Node, which has no netlink
 * (the apply code then runs `ip` through its runner). The entrypoint's runner module has netlink.
 */
export function runtimeRoutes(_options: ProcessRunnerOptions = {}): RouteBackend | undefined {
  return undefined;
}

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

const heldLocks = new Set<string>();

/** The namespace's run lock (commands.ts lockName) under Node: a listening abstract unix socket. */
async function nodeLock(ns: string | undefined, waitMs: number): Promise<(() => void) | undefined> {
  const name = lockName(ns);
  // Taken again inside a run that holds it (one process): already ours.
  if (heldLocks.has(name)) return () => {};
  const { createServer } = await import('node:net');
  const deadline = Date.now() + waitMs;
  for (;;) {
    const server = createServer();
    const held = await new Promise<boolean>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
      server.listen({ path: `\0${name}` }, () => resolve(true));
    });
    if (held) {
      server.unref();
      heldLocks.add(name);
      return () => {
        heldLocks.delete(name);
        server.close();
      };
    }
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Commands run with execa (loaded on first use), the payload fed on stdin, inside the target
 * namespace when one is given: every command under Node. What is not the spawn (the namespace
 * prefix, the result's shape, the run lock's contract) is shared with the entrypoint's runner
 * (commands.ts); bound() and nodeLock are this runtime's part.
 */
export function processRunner(options: ProcessRunnerOptions = {}): Runner {
  const prefix = prefixFor(options.namespace);
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    lock: (waitMs) => nodeLock(options.namespace, waitMs),
    async run(argv, input) {
      const { execa } = await import('execa');
      const full = [...prefix, ...argv];
      let timedOut = false;
      const child = execa(full[0] ?? '', full.slice(1), {
        reject: false,
        // Our own bound() sends SIGTERM and SIGKILL and closes pipes left open; execa's only the first two.
        timeout: timeout + KILL_GRACE_MS + PIPE_GRACE_MS,
        forceKillAfterDelay: KILL_GRACE_MS,
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
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
      );
    },
  };
}

/**
 * The runner for the fast path of a fresh namespace: under Node the same as processRunner (execa
 * for every command). The entrypoint's runner module (platform/quickjs/runner.ts) is the one whose
 * commands start early and take their input in pieces (Runner.start).
 */
export function spawnRunner(options: ProcessRunnerOptions = {}): Runner {
  return processRunner(options);
}
