/*
 * The contract of running commands, shared by the runners (apply/runner.ts on Node and Bun,
 * platform/quickjs/runner.ts in the entrypoint).
 */

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
  /**
   * Optional: start a command now and write its stdin in pieces, so it reads the first while the
   * rest is produced (the entrypoint's runner has it). Same result as run with the pieces joined.
   */
  start?(argv: readonly string[]): RunStream;
}

/** A command started by Runner.start: write pieces of stdin, then end it and wait for the result. */
export interface RunStream {
  write(text: string): void;
  end(): Promise<RunResult>;
}

export interface ProcessRunnerOptions {
  /** Run inside this network namespace: a name under /var/run/netns, or a path (via nsenter). */
  readonly namespace?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Bound for every command (ms). */
  readonly timeoutMs?: number;
}

/** How ip netns exec or nsenter report that the program itself was not found. */
export const NOT_FOUND = /exec of ".*" failed: No such file or directory|failed to execute .*: No such file or directory/;
/** Bound for every command unless the caller sets one (ms). */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** The command prefix that runs inside a network namespace: a name under /var/run/netns, or a path. */
export function prefixFor(ns: string | undefined): string[] {
  return ns === undefined ? [] : ns.startsWith('/') ? ['nsenter', `--net=${ns}`, '--'] : ['ip', 'netns', 'exec', ns];
}
