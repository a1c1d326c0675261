import type { Family } from '../model/rule.js';
import type { RunDeadline, Runner } from '../apply/commands.js';
import type { RouteBackend } from '../apply/routes.js';
import type { ProbeOptions, ProbeResult } from '../apply/probe.js';
import type { InterfaceAddress } from '../config/host.js';
import type { LockAttempt } from './host.js';

export type { LockAttempt } from './host.js';

/*
 * The seam between the two runtimes: what differs between Node (src/platform/node.ts) and the
 * entrypoint's own runtime (src/platform/quickjs/platform.ts) is one interface, and each runtime's
 * module exports one `platform` the type checker holds to it. The bundler puts the runtime's module
 * in place of Node's and fails the build when their exports differ (scripts/bundle-quickjs.mjs).
 * Everything above the seam (the door, src/api/namespace.ts, and the apply engine) is shared.
 */

/** A network namespace a run is pointed at, opened and checked once; every later use goes through its descriptor. */
export interface Namespace {
  /** As given: a name under /var/run/netns, or a path. */
  readonly given: string;
  /** The file that names it: /var/run/netns/NAME, or the path as given. */
  readonly file: string;
  /** The kernel's name for it, `net:[inode]`. */
  readonly id: string;
  /** The open file's descriptor (close-on-exec). */
  readonly fd: number;
}

/** Why a namespace file was refused. */
export class NamespaceError extends Error {
  override readonly name = 'NamespaceError';
  constructor(
    readonly file: string,
    /** What was found, after the file's name: `does not exist`, `is not a network namespace (a FIFO)`, ... */
    readonly found: string,
  ) {
    super(`${file} ${found}`);
  }
}

/** A fact about a namespace and where it was read, for the log. */
export interface Fact<T> {
  readonly value: T;
  /** Where it was read, the same whichever runtime read it: `(this namespace)`, `/proc/net/ip_tables_names (in /var/run/netns/pod, net:[4026532241])`. */
  readonly source: string;
}

/** What is read from or done to a namespace besides running the restores. */
export interface Kernel {
  /** The routing steps: read, added, removed. */
  readonly routes: RouteBackend;
  /** Every interface's addresses, interface by interface (index order); Istio's rule walks each family's in this order, IPv4 first (config/host.ts ipv6FromAddresses). */
  addresses(): Promise<Fact<readonly InterfaceAddress[]>>;
  /** A file of /proc/net or /proc/sys/net as the namespace shows it; undefined when there is none. */
  netFile(path: string): Promise<Fact<string | undefined>>;
  /**
   * The nf_tables tables of a family, listed without running a program; undefined when this
   * platform cannot (then a run reads the namespace with iptables-save first).
   */
  tables?(family: Family): Promise<readonly string[]>;
}

/** The run lock of a namespace, one attempt at a time (the waiting is shared: apply/lock.ts). */
export interface LockPrimitive {
  attempt(): Promise<LockAttempt>;
  /** Hold what the last attempt bound (the names in use are held by no run of ours). */
  keep(): void;
  /** Give up the lock, or what the last attempt bound. */
  release(): void;
}

export interface RunnerOptions {
  /** The commands' environment (default: this process's). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Bound for every command (ms). */
  readonly timeoutMs?: number | undefined;
  /** The run's deadline: every command is bounded by what is left of it too, and none starts past it but an undo. */
  readonly deadline?: RunDeadline | undefined;
}

export interface Platform {
  readonly name: 'node' | 'quickjs';
  /** Open and check a namespace file, without blocking (a FIFO is refused, not waited on). Throws a NamespaceError. */
  openNamespace(file: string, given: string): Promise<Namespace>;
  closeNamespace(ns: Namespace): void;
  /** Runs commands in the namespace (undefined: this process's). */
  runner(ns: Namespace | undefined, options?: RunnerOptions): Runner;
  /** Routing, addresses and /proc files of the namespace: over netlink in the runtime, with `ip` through the runner under Node. */
  kernel(ns: Namespace | undefined, runner: Runner): Kernel;
  /** The namespace's run lock. */
  lock(ns: Namespace | undefined): LockPrimitive;
  /** How to run this program again (the validation probe in another namespace). */
  selfCommand(): string[];
  /** The validation probe here: listeners, then the client as the proxy's uid/gid. */
  runProbe(o: ProbeOptions): Promise<ProbeResult>;
  /** A monotonic clock (ms). */
  now(): number;
  sleep(ms: number): Promise<void>;
}
