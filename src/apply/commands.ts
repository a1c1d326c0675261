/*
 * The contract of running commands, shared by the runners (platform/node/runner.ts on Node,
 * platform/quickjs/runner.ts in the entrypoint, a library caller's CommandRunner adapted in
 * api/namespace.ts), and the one wording of a command that failed.
 */
import { ApplyError } from '../errors.js';
import { host } from '../platform/host.js';

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

/**
 * The only environment variables a command of ours (iptables-restore, iptables-save, nft, ip,
 * nsenter, this program's probe) gets from the caller's environment: PATH, to find the programs,
 * and XTABLES_LOCKFILE, the xtables lock file every iptables run on the node must share. Nothing
 * else reaches them: no variable can change what they load (XTABLES_LIBDIR, LD_PRELOAD,
 * LD_LIBRARY_PATH, NODE_OPTIONS...), whatever a pod spec sets. Both runners (apply/runner.ts,
 * platform/quickjs/runner.ts) and the commands the entrypoint starts early use it.
 */
export const CHILD_ENV = ['PATH', 'XTABLES_LOCKFILE'] as const;

/** The caller's environment narrowed to CHILD_ENV (variables it does not set stay unset). */
export function childEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of CHILD_ENV) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** How ip netns exec or nsenter report that the program itself was not found. */
export const NOT_FOUND = /exec of ".*" failed: No such file or directory|failed to execute .*: No such file or directory/;
/** Bound for every command unless the caller sets one (ms). */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** A command still running this long after its SIGTERM (timeout) gets SIGKILL (ms). */
export const KILL_GRACE_MS = 2_000;
/**
 * Once a command has exited, how long its output pipes may stay open (held by a process it left
 * behind) before they are closed and the result taken as it is (ms): no wait is unbounded.
 */
export const PIPE_GRACE_MS = 1_000;

/**
 * A run's deadline (--run-timeout): the whole run's changes get this long, and each command, and
 * each wait for a lock, gets at most what is left of it, so that no mix of hanging commands (one
 * that ignores SIGTERM and leaves a process holding its pipes costs its timeout plus
 * KILL_GRACE_MS plus PIPE_GRACE_MS) and retries can stretch a run past it. Once it has passed no
 * new command starts, except those that undo the run's changes (undoing), which get UNDO_MS.
 */
export interface RunDeadline {
  /** The run's bound, in ms. */
  readonly ms: number;
  /** How long a command starting now may take (ms); 0 or less: it must not start. */
  left(): number;
  /** Whether the deadline has passed. */
  passed(): boolean;
  /**
   * Run `fn`, which undoes this run's changes: its commands may run until UNDO_MS after it
   * began, when that is later than the deadline.
   */
  undoing<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * The time given to undoing a run's changes once its deadline has passed (ms): as long as a
 * restore may wait for the xtables lock (LOCK_WAIT_SECONDS), since the rollback is a restore.
 */
export const UNDO_MS = 30_000;

/** A monotonic clock in ms: the runtime's in the entrypoint, performance's under Node. */
export function monotonicMs(): number {
  return host !== undefined ? host.now() : performance.now();
}

/** A deadline `ms` from now. */
export function runDeadline(ms: number, clock: () => number = monotonicMs): RunDeadline {
  const end = clock() + ms;
  let depth = 0;
  let undoEnd = end;
  return {
    ms,
    left: () => (depth > 0 ? undoEnd : end) - clock(),
    passed: () => clock() >= end,
    async undoing(fn) {
      if (depth++ === 0) undoEnd = Math.max(end, clock() + UNDO_MS);
      try {
        return await fn();
      } finally {
        depth--;
      }
    },
  };
}

/** Run `fn`, which undoes this run's changes, within the deadline's undo bound when there is one. */
export function undoing<T>(deadline: RunDeadline | undefined, fn: () => Promise<T>): Promise<T> {
  return deadline === undefined ? fn() : deadline.undoing(fn);
}

/** How long a command may run: its own bound, within what is left of the run's deadline. */
export function commandBound(timeoutMs: number, deadline: RunDeadline | undefined): number {
  return deadline === undefined ? timeoutMs : Math.min(timeoutMs, Math.floor(deadline.left()));
}

/** The result of a command not started because the run's deadline had passed. */
export function notStarted(deadline: RunDeadline): RunResult {
  return { exitCode: 124, stdout: '', stderr: `not started: the run's deadline (${deadline.ms} ms) had passed`, notFound: false };
}

/**
 * What a runtime's spawn reports about a command, before the shared shaping (commandResult): the
 * only part of a runner each runtime writes itself, with the lock's primitive.
 */
export interface Spawned {
  /** The exit status; -1 when there is none (killed by a signal, never started). */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Killed at its timeout (SIGTERM, SIGKILL KILL_GRACE_MS later if it ignored that). */
  readonly timedOut: boolean;
  /** The errno code when the program could not be started (ENOENT: not found). */
  readonly spawnError?: string | null | undefined;
  /** Why there is no exit status (a signal, a spawn error), said in stderr when the command wrote nothing there. */
  readonly failure?: string | undefined;
}

/**
 * A spawned command's result, the same on every runtime: a timed-out command exits 124 with
 * "timed out after N ms" first in its stderr (", at the run's deadline" when that was its bound:
 * `ownMs`, its own bound, was longer); notFound when the program itself (or, inside a
 * namespace, the program nsenter or ip netns exec was to run) could not be found.
 */
export function commandResult(s: Spawned, prefix: readonly string[], timeoutMs: number, ownMs: number = timeoutMs): RunResult {
  const why = timeoutMs < ownMs ? `timed out after ${timeoutMs} ms, at the run's deadline` : `timed out after ${timeoutMs} ms`;
  return {
    exitCode: s.timedOut ? 124 : s.exitCode,
    stdout: s.stdout,
    stderr: s.timedOut ? `${why}\n${s.stderr}`.trim() : s.stderr === '' && s.failure !== undefined ? s.failure : s.stderr,
    notFound: s.spawnError === 'ENOENT' || (prefix.length > 0 && NOT_FOUND.test(s.stderr)),
  };
}

/**
 * The command prefix that runs inside a network namespace given by name or path: for a library
 * caller's own runner, which gets commands, not a namespace (the platforms' runners enter the
 * namespace they opened, by its descriptor).
 */
export function prefixFor(ns: string | undefined): string[] {
  return ns === undefined ? [] : ns.startsWith('/') ? ['nsenter', `--net=${ns}`, '--'] : ['ip', 'netns', 'exec', ns];
}

/**
 * A network namespace's run lock: an abstract unix socket name in that namespace (the kernel keeps
 * one name space of them per network namespace, and frees the name when its holder dies, even by
 * SIGKILL). Taken in the target namespace whoever takes it: a run inside the namespace (the init
 * container) and a run from outside (--network-namespace, by name or by any path to it) contend
 * for the same name. apply/lock.ts waits for it.
 */
export const LOCK_NAME = 'istio-iptables/run';

/**
 * The file of a namespace given to --network-namespace: a name under /var/run/netns, or a path
 * as given; undefined for the runner's own namespace.
 */
export function namespaceFile(ns: string | undefined): string | undefined {
  return ns === undefined ? undefined : ns.startsWith('/') ? ns : `/var/run/netns/${ns}`;
}

/** What a failed command said, in a line: not found, or its exit status and its first lines of stderr. */
export function describeCommandFailure(argv: readonly string[], r: RunResult): string {
  if (r.notFound) return `${argv[0] ?? 'command'} not found`;
  const detail = r.stderr.trim().split('\n').filter((l) => l.length > 0).slice(0, 3).join(' | ');
  return `(exit ${r.exitCode})${detail === '' ? '' : `: ${detail}`}`;
}

/** A command that failed, as the error a run ends with: what it was doing, then what the command said. */
export function commandError(what: string, argv: readonly string[], r: RunResult): ApplyError {
  if (r.notFound) return new ApplyError(`${argv[0] ?? 'command'} not found (install iptables / iproute2 / nftables)`, argv, r.stderr);
  return new ApplyError(`${what} ${describeCommandFailure(argv, r)}`, argv, r.stderr);
}
