import { execa } from 'execa';

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

/** Commands run with execa, the payload fed on stdin, inside the target namespace when one is given. */
export function processRunner(options: ProcessRunnerOptions = {}): Runner {
  const ns = options.namespace;
  const prefix = ns === undefined ? [] : ns.startsWith('/') ? ['nsenter', `--net=${ns}`, '--'] : ['ip', 'netns', 'exec', ns];
  return {
    async run(argv, input) {
      const full = [...prefix, ...argv];
      const r = await execa(full[0] ?? '', full.slice(1), {
        reject: false,
        timeout: options.timeoutMs ?? 60_000,
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
      });
      const stderr = r.stderr ?? '';
      const notFound = (r as { code?: string }).code === 'ENOENT' || (prefix.length > 0 && NOT_FOUND.test(stderr));
      return {
        exitCode: r.exitCode ?? (r.timedOut ? 124 : -1),
        stdout: r.stdout ?? '',
        stderr: r.timedOut ? `${stderr}\ntimed out after ${options.timeoutMs ?? 60_000} ms`.trim() : stderr,
        notFound,
      };
    },
  };
}
