import { spawn } from 'node:child_process';
import { DEFAULT_TIMEOUT_MS, NOT_FOUND, prefixFor, type ProcessRunnerOptions, type Runner } from './commands.js';
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
 * Commands run with execa (loaded on first use), the payload fed on stdin, inside the target
 * namespace when one is given. The general runner: library users, reruns, drift, cleanup.
 */
export function processRunner(options: ProcessRunnerOptions = {}): Runner {
  const prefix = prefixFor(options.namespace);
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    async run(argv, input) {
      const { execa } = await import('execa');
      const full = [...prefix, ...argv];
      const r = await execa(full[0] ?? '', full.slice(1), {
        reject: false,
        timeout,
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
      });
      const stderr = r.stderr ?? '';
      const notFound = (r as { code?: string }).code === 'ENOENT' || (prefix.length > 0 && NOT_FOUND.test(stderr));
      return {
        exitCode: r.exitCode ?? (r.timedOut ? 124 : -1),
        stdout: r.stdout ?? '',
        stderr: r.timedOut ? `${stderr}\ntimed out after ${timeout} ms`.trim() : stderr,
        notFound,
      };
    },
  };
}

/** The part of Bun's spawn API we use (Bun is the entrypoint's runtime; Node has no `Bun`). */
interface BunSpawn {
  spawn(
    cmd: string[],
    opts: { stdin: Uint8Array | 'ignore'; stdout: 'pipe'; stderr: 'pipe'; env?: Record<string, string | undefined>; timeout?: number },
  ): { exited: Promise<number>; stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array>; signalCode: string | null };
}

/**
 * The same contract for the init container's hot path, on the lightest spawn the runtime has:
 * in the compiled entrypoint `Bun.spawn` starts a process in ~0.7 ms where the first
 * `child_process.spawn` costs ~4.5 ms and loading execa another ~4.5 ms (measured; the whole
 * budget of an apply is ~15 ms). Under Node, bare `child_process.spawn`. Used only for the
 * fast path of a fresh namespace; everything else uses processRunner.
 */
export function spawnRunner(options: ProcessRunnerOptions = {}): Runner {
  const bun = (globalThis as { Bun?: BunSpawn }).Bun;
  return bun === undefined ? childProcessRunner(options) : bunRunner(bun, options);
}

function bunRunner(bun: BunSpawn, options: ProcessRunnerOptions): Runner {
  const prefix = prefixFor(options.namespace);
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    async run(argv, input) {
      const full = [...prefix, ...argv];
      let child: ReturnType<BunSpawn['spawn']>;
      try {
        child = bun.spawn(full, {
          stdin: input === undefined ? 'ignore' : new TextEncoder().encode(input),
          stdout: 'pipe',
          stderr: 'pipe',
          timeout,
          ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }),
        });
      } catch (err) {
        return { exitCode: -1, stdout: '', stderr: err instanceof Error ? err.message : String(err), notFound: true };
      }
      const [exitCode, stdout, stderr] = await Promise.all([child.exited, new Response(child.stdout).text(), new Response(child.stderr).text()]);
      const timedOut = child.signalCode !== null && exitCode !== 0;
      return {
        exitCode: timedOut ? 124 : exitCode,
        stdout,
        stderr: timedOut ? `${stderr}\ntimed out after ${timeout} ms`.trim() : stderr,
        notFound: prefix.length > 0 && NOT_FOUND.test(stderr),
      };
    },
  };
}

function childProcessRunner(options: ProcessRunnerOptions): Runner {
  const prefix = prefixFor(options.namespace);
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    run(argv, input) {
      const full = [...prefix, ...argv];
      return new Promise((resolve) => {
        const child = spawn(full[0] ?? '', full.slice(1), {
          stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
          ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }),
          timeout,
        });
        let stdout = '';
        let stderr = '';
        child.stdout?.setEncoding('utf8').on('data', (d: string) => void (stdout += d));
        child.stderr?.setEncoding('utf8').on('data', (d: string) => void (stderr += d));
        child.on('error', (err: NodeJS.ErrnoException) => {
          resolve({ exitCode: -1, stdout, stderr: `${stderr}${err.message}`, notFound: err.code === 'ENOENT' });
        });
        child.on('close', (code, signal) => {
          const timedOut = signal === 'SIGTERM' && code === null;
          resolve({
            exitCode: code ?? (timedOut ? 124 : -1),
            stdout,
            stderr: timedOut ? `${stderr}\ntimed out after ${timeout} ms`.trim() : stderr,
            notFound: prefix.length > 0 && NOT_FOUND.test(stderr),
          });
        });
        if (input !== undefined) child.stdin?.end(input);
      });
    },
  };
}
