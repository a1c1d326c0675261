import { spawn } from 'node:child_process';
import { host, type Host } from '../platform/host.js';
import { claim, type Finished } from '../platform/quickjs/early.js';

/** What a command did. `notFound` is set when the program itself could not be found. */
export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly notFound: boolean;
  /** Set when the command had been started before the program loaded (the entrypoint's prelude). */
  readonly startedEarly?: boolean;
}

/** The only way the apply step touches the host: tests record calls or put fakes on PATH. */
export interface Runner {
  run(argv: readonly string[], input?: string): Promise<RunResult>;
}

export interface ProcessRunnerOptions {
  /** Run inside this network namespace: a name under /var/run/netns, or a path (via nsenter). */
  readonly namespace?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  /** Bound for every command (ms). */
  readonly timeoutMs?: number;
}

const NOT_FOUND = /exec of ".*" failed: No such file or directory|failed to execute .*: No such file or directory/;
/** Bound for every command unless the caller sets one (ms). */
export const DEFAULT_TIMEOUT_MS = 60_000;

function prefixFor(ns: string | undefined): string[] {
  return ns === undefined ? [] : ns.startsWith('/') ? ['nsenter', `--net=${ns}`, '--'] : ['ip', 'netns', 'exec', ns];
}

/**
 * Commands run with execa (loaded on first use), the payload fed on stdin, inside the target
 * namespace when one is given. The general runner: library users, reruns, drift, cleanup.
 */
export function processRunner(options: ProcessRunnerOptions = {}): Runner {
  if (host !== undefined) return hostRunner(host, options);
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
  if (host !== undefined) return hostRunner(host, options);
  const bun = (globalThis as { Bun?: BunSpawn }).Bun;
  return bun === undefined ? childProcessRunner(options) : bunRunner(bun, options);
}

/** The QuickJS entrypoint's runner: the host's spawn (posix_spawn, pipes, one poll loop). */
function hostRunner(h: Host, options: ProcessRunnerOptions): Runner {
  const prefix = prefixFor(options.namespace);
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const ours = options.env === undefined || options.env === process.env;
  const env = ours ? null : Object.entries({ ...process.env, ...options.env }).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  return {
    async run(argv, input) {
      const full = [...prefix, ...argv];
      const result = (f: Finished, early: boolean): RunResult => ({
        exitCode: f.timedOut ? 124 : f.exitCode,
        stdout: f.stdout,
        stderr: f.timedOut ? `${f.stderr}\ntimed out after ${timeout} ms`.trim() : f.stderr,
        notFound: f.spawnError === 'ENOENT' || (prefix.length > 0 && NOT_FOUND.test(f.stderr)),
        ...(early ? { startedEarly: true } : {}),
      });
      // Started by the prelude (same command, our environment and default bound): feed it.
      const early = input !== undefined && ours && options.timeoutMs === undefined ? claim(h, full, input) : undefined;
      if (early !== undefined) return result(await early, true);
      return new Promise((resolve) => {
        h.spawn(full, input ?? null, env, timeout, (exitCode, _signal, stdout, stderr, spawnError, timedOut) =>
          resolve(result({ exitCode, stdout, stderr, spawnError, timedOut }, false)),
        );
      });
    },
  };
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
