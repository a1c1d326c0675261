import { spawn, type ChildProcess } from 'node:child_process';
import { DEFAULT_TIMEOUT_MS, KILL_GRACE_MS, lockName, NOT_FOUND, PIPE_GRACE_MS, prefixFor, type ProcessRunnerOptions, type Runner } from './commands.js';
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
 * namespace when one is given. The general runner: library users, reruns, drift, cleanup.
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
      const stderr = typeof r.stderr === 'string' ? r.stderr : '';
      const notFound = (r as { code?: string }).code === 'ENOENT' || (prefix.length > 0 && NOT_FOUND.test(stderr));
      const killed = timedOut || r.timedOut;
      return {
        exitCode: killed ? 124 : (r.exitCode ?? -1),
        stdout: typeof r.stdout === 'string' ? r.stdout : '',
        stderr: killed ? `timed out after ${timeout} ms\n${stderr}`.trim() : r.exitCode === undefined && stderr === '' ? String(r.message) : stderr,
        notFound,
      };
    },
  };
}

/**
 * The same contract on bare `child_process.spawn`, for the fast path of a fresh namespace under
 * Node (loading execa costs milliseconds there); everything else uses processRunner. The
 * entrypoint has its own runner module (platform/quickjs/runner.ts).
 */
export function spawnRunner(options: ProcessRunnerOptions = {}): Runner {
  return childProcessRunner(options);
}

function childProcessRunner(options: ProcessRunnerOptions): Runner {
  const prefix = prefixFor(options.namespace);
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    lock: (waitMs) => nodeLock(options.namespace, waitMs),
    run(argv, input) {
      const full = [...prefix, ...argv];
      return new Promise((resolve) => {
        let settled = false;
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        const settle = (r: { exitCode: number; notFound: boolean; extra?: string }) => {
          if (settled) return;
          settled = true;
          stop();
          const err = `${stderr}${r.extra ?? ''}`;
          resolve({
            exitCode: timedOut ? 124 : r.exitCode,
            stdout,
            stderr: timedOut ? `timed out after ${timeout} ms\n${err}`.trim() : err,
            notFound: r.notFound || (prefix.length > 0 && NOT_FOUND.test(stderr)),
          });
        };
        let child: ChildProcess;
        try {
          child = spawn(full[0] ?? '', full.slice(1), {
            stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
            ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }),
          });
        } catch (err) {
          resolve({ exitCode: -1, stdout: '', stderr: err instanceof Error ? err.message : String(err), notFound: false });
          return;
        }
        const stop = bound(child, timeout, () => void (timedOut = true));
        child.stdout?.setEncoding('utf8').on('data', (d: string) => void (stdout += d));
        child.stderr?.setEncoding('utf8').on('data', (d: string) => void (stderr += d));
        child.stdout?.on('error', () => {});
        child.stderr?.on('error', () => {});
        child.on('error', (err: NodeJS.ErrnoException) => settle({ exitCode: -1, notFound: err.code === 'ENOENT', extra: err.message }));
        child.on('close', (code, signal) => settle({ exitCode: code ?? -1, notFound: false, extra: code === null && signal !== null ? `killed by ${signal}` : '' }));
        if (input !== undefined) child.stdin?.end(input);
      });
    },
  };
}
