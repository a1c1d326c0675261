/**
 * Commands started before the program loaded (by the prelude), waiting for their stdin, and how
 * the runner claims one: same command line, then its payload is fed. Kept on the global object,
 * since the prelude and the program are two scripts.
 */
import type { Host } from '../host.js';
import { childEnv } from '../../apply/commands.js';

export interface Finished {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly spawnError: string | null;
  readonly timedOut: boolean;
}

export interface Started {
  readonly pid: number;
  readonly finished: Promise<Finished>;
}

const KEY = '__istioIptablesEarly';
const registry = (): Map<string, Started> => ((globalThis as Record<string, unknown>)[KEY] ??= new Map()) as Map<string, Started>;
const key = (argv: readonly string[]) => argv.join('\0');

/**
 * Start a command (env: NAME=value strings, all it gets; null: none) with `input` on stdin: null
 * for none, undefined to wait for feed(); inside the namespace whose descriptor is `ns`, when
 * given. The result arrives through `finished`.
 */
export function spawnCommand(h: Host, argv: readonly string[], input: null | undefined, env: readonly string[] | null, timeoutMs: number, ns?: number): Started {
  let resolve!: (f: Finished) => void;
  const finished = new Promise<Finished>((r) => (resolve = r));
  const done = (exitCode: number, _signal: string | null, stdout: string, stderr: string, spawnError: string | null, timedOut: boolean) =>
    resolve({ exitCode, stdout, stderr, spawnError, timedOut });
  const pid = ns === undefined ? h.spawn(argv, input, env, timeoutMs, done) : h.spawn(argv, input, env, timeoutMs, done, ns);
  return { pid, finished };
}

/** An environment narrowed to what a command gets (commands.ts CHILD_ENV), as NAME=value strings. */
export function childEnvStrings(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.entries(childEnv(env)).map(([k, v]) => `${k}=${v}`);
}

/** The prelude's: start a command with our environment as a command gets it, for the run to claim by its command line. */
export function startEarly(h: Host, argv: readonly string[], timeoutMs: number): void {
  const started = spawnCommand(h, argv, undefined, childEnvStrings(h.env), timeoutMs);
  if (started.pid > 0) registry().set(key(argv), started);
}

/** The waiting command with this command line, now the caller's to feed; undefined when none was started. */
export function claim(argv: readonly string[]): Started | undefined {
  const started = registry().get(key(argv));
  if (started !== undefined) registry().delete(key(argv));
  return started;
}
