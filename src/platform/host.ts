/**
 * The operating-system calls of the QuickJS entrypoint's runtime (native/host.c), present as
 * `globalThis.__host` only there. Under Node and Bun this is undefined and nothing here is used.
 */
export interface Host {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** False when the write failed (the process then exits 1, whatever the program returns). */
  write(fd: 1 | 2, text: string): boolean;
  /** Throws an Error with `code` (ENOENT, EACCES, ...) as Node's fs does. */
  readFile(path: string): string;
  exists(path: string): boolean;
  interfaces(): { name: string; family: 'IPv4' | 'IPv6'; address: string; internal: boolean }[];
  /**
   * Start a command (PATH lookup) with `input` on stdin (/dev/null when null; when undefined,
   * stdin waits for feed(), and is closed empty once every command left is waiting and no
   * JavaScript is pending) and `env` as NAME=value strings (null: ours). `done` runs from the event loop once it exited; spawnError
   * is set (ENOENT, ...) when it could not start; one still running after timeoutMs gets SIGTERM.
   */
  spawn(
    argv: readonly string[],
    input: string | null | undefined,
    env: readonly string[] | null,
    timeoutMs: number,
    done: (exitCode: number, signal: string | null, stdout: string, stderr: string, spawnError: string | null, timedOut: boolean) => void,
  ): number;
  /**
   * Give a waiting command (more of) its stdin, written as soon as the pipe takes it; with
   * `more` it keeps waiting for the rest, else its stdin closes once written. False when no such
   * command is waiting.
   */
  feed(pid: number, input: string, more?: boolean): boolean;
  setExitCode(code: number): void;
  /** Replace this process (execv); returns only by throwing. */
  exec(path: string, argv: readonly string[]): never;
  selfPath(): string;
  /**
   * Bind the abstract unix socket `name` (per network namespace; freed when this process ends),
   * retrying while another process holds it: true once held, false when waitMs passed.
   */
  lock(name: string, waitMs: number): boolean;
}

export const host: Host | undefined = (globalThis as { __host?: Host }).__host;
