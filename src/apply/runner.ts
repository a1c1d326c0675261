import type { ChildProcess } from 'node:child_process';
import { childEnv, commandBound, commandResult, DEFAULT_TIMEOUT_MS, KILL_GRACE_MS, LOCK_NAME, namespaceFile, notStarted, PIPE_GRACE_MS, prefixFor, type ProcessRunnerOptions, type Runner } from './commands.js';
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

/** Bind the run lock's socket here, retrying every 10 ms until the deadline: held, or not. */
async function bindLock(deadline: number): Promise<(() => void) | undefined> {
  const { createServer } = await import('node:net');
  for (;;) {
    const server = createServer();
    const held = await new Promise<boolean>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
      server.listen({ path: `\0${LOCK_NAME}` }, () => resolve(true));
    });
    if (held) {
      server.unref();
      return () => server.close();
    }
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Holds the run lock inside another namespace (Node cannot make a socket there itself): Node
 * again, under nsenter, binding the lock's socket there. It prints "held" or "busy" and, once
 * held, keeps it until its stdin ends: when we release it, or when this process ends in any way.
 * Started with no environment but PATH, so no variable (NODE_OPTIONS) changes the code it runs.
 */
const LOCK_HOLDER = `
const until = Date.now() + Number(process.argv[1]);
const attempt = () => {
  const s = require('node:net').createServer();
  s.once('error', (e) => {
    if (e.code !== 'EADDRINUSE') { process.stderr.write(e.message); process.exit(2); }
    if (Date.now() >= until) { process.stdout.write('busy\\n'); process.exit(0); }
    setTimeout(attempt, 10);
  });
  s.listen({ path: '\\0${LOCK_NAME}' }, () => {
    process.stdout.write('held\\n');
    process.stdin.on('error', () => process.exit(0)).on('end', () => process.exit(0)).resume();
  });
};
attempt();
`;

async function lockElsewhere(netns: string, waitMs: number): Promise<(() => void) | undefined> {
  const { execa } = await import('execa');
  const holder = execa('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', LOCK_HOLDER, String(waitMs)], {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    extendEnv: false,
    stdin: 'pipe',
    reject: false,
  });
  // The holder answers within waitMs (plus its start); it is ended if it does not.
  const noAnswer = setTimeout(() => holder.kill('SIGKILL'), waitMs + 10_000);
  const answer = await new Promise<string>((resolve) => {
    let out = '';
    holder.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    void holder.then(() => resolve(out.trim()));
  }).finally(() => clearTimeout(noAnswer));
  if (answer === 'held') {
    holder.unref();
    (holder.stdout as { unref?: () => void } | null)?.unref?.();
    (holder.stdin as { unref?: () => void } | null)?.unref?.();
    return () => holder.stdin?.end();
  }
  const done = await holder;
  if (answer === 'busy') return undefined;
  const code = (done as { code?: string }).code;
  const how = done.exitCode !== undefined ? `exit ${done.exitCode}` : done.signal !== undefined ? `signal ${done.signal}` : code === 'ENOENT' ? 'nsenter not found' : `not started: ${code ?? 'unknown error'}`;
  throw new Error(`the run lock's holder in ${netns} failed (${how}): ${String(done.stderr).trim() || answer || 'no answer'}`);
}

/**
 * The namespace's run lock (commands.ts LOCK_NAME) under Node: a listening abstract unix socket
 * in the target namespace, bound here for our own, by a holder process for another.
 */
async function nodeLock(ns: string | undefined, waitMs: number): Promise<(() => void) | undefined> {
  const netns = namespaceFile(ns);
  const key = netns ?? '';
  // Taken again inside a run that holds it (one process): already ours.
  if (heldLocks.has(key)) return () => {};
  const deadline = Date.now() + waitMs;
  const release = netns === undefined ? await bindLock(deadline) : await lockElsewhere(netns, waitMs);
  if (release === undefined) return undefined;
  heldLocks.add(key);
  return () => {
    heldLocks.delete(key);
    release();
  };
}

/**
 * Commands run with execa (loaded on first use), the payload fed on stdin, inside the target
 * namespace when one is given: every command under Node, each bounded by its timeout and what
 * is left of the run's deadline. What is not the spawn (the namespace prefix, the result's shape,
 * the bounds, the run lock's contract) is shared with the entrypoint's runner (commands.ts);
 * bound() and nodeLock are this runtime's part.
 */
export function processRunner(options: ProcessRunnerOptions = {}): Runner {
  const prefix = prefixFor(options.namespace);
  const own = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { deadline } = options;
  return {
    lock: (waitMs) => nodeLock(options.namespace, Math.max(0, commandBound(waitMs, deadline))),
    async run(argv, input) {
      const timeout = commandBound(own, deadline);
      if (deadline !== undefined && timeout <= 0) return notStarted(deadline);
      const { execa } = await import('execa');
      const full = [...prefix, ...argv];
      let timedOut = false;
      const child = execa(full[0] ?? '', full.slice(1), {
        reject: false,
        // Our own bound() sends SIGTERM and SIGKILL and closes pipes left open; execa's only the first two.
        timeout: timeout + KILL_GRACE_MS + PIPE_GRACE_MS,
        forceKillAfterDelay: KILL_GRACE_MS,
        // Only PATH and the xtables lock file reach the command (commands.ts CHILD_ENV).
        env: childEnv({ ...process.env, ...options.env }),
        extendEnv: false,
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
        own,
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
