import { spawn } from 'node:child_process';

/** What a command did. `notFound` is set when the program itself could not be found. */
export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly notFound: boolean;
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
const DEFAULT_TIMEOUT_MS = 60_000;

function prefixFor(ns: string | undefined): string[] {
  return ns === undefined ? [] : ns.startsWith('/') ? ['nsenter', `--net=${ns}`, '--'] : ['ip', 'netns', 'exec', ns];
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

/**
 * The same contract on bare `child_process.spawn`, for the init container's hot path: execa
 * alone takes ~4.5 ms to load in the compiled entrypoint, a third of the budget of a whole
 * apply. Used only for the fast path of a fresh namespace; everything else uses processRunner.
 */
export function spawnRunner(options: ProcessRunnerOptions = {}): Runner {
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
