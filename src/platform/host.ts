/**
 * The operating-system calls of the QuickJS entrypoint's runtime (native/host.c), present as
 * `globalThis.__host` only there. Under Node this is undefined and nothing here is used.
 */
export interface Host {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** False when the write failed (the process then exits 1, whatever the program returns). */
  write(fd: 1 | 2, text: string): boolean;
  /**
   * Throws an Error with `code` (ENOENT, EACCES, ...) as Node's fs does. With `ns` (a namespace's
   * fd from openNamespace), the file is opened inside that network namespace.
   */
  readFile(path: string, ns?: number): string;
  exists(path: string): boolean;
  interfaces(): { name: string; family: 'IPv4' | 'IPv6'; address: string; internal: boolean }[];
  /**
   * Start a command (PATH lookup) with `input` on stdin (/dev/null when null; when undefined,
   * stdin waits for feed(), and is closed empty once every command left is waiting and no
   * JavaScript is pending) and `env` as NAME=value strings, its whole environment (null: none;
   * nothing of ours is passed on by itself). `done` runs from the event loop once it exited; spawnError
   * is set (ENOENT, ...) when it could not start; one still running after timeoutMs gets SIGTERM.
   */
  spawn(
    argv: readonly string[],
    input: string | null | undefined,
    env: readonly string[] | null,
    timeoutMs: number,
    done: (exitCode: number, signal: string | null, stdout: string, stderr: string, spawnError: string | null, timedOut: boolean) => void,
    /** Run the child inside this network namespace (a namespace's fd from openNamespace), entered between fork and exec. */
    ns?: number,
  ): number;
  /**
   * Give a waiting command (more of) its stdin, written as soon as the pipe takes it; with
   * `more` it keeps waiting for the rest, else its stdin closes once written. False when no such
   * command is waiting.
   */
  feed(pid: number, input: string, more?: boolean): boolean;
  setExitCode(code: number): void;
  selfPath(): string;
  /** Run an embedded script of code only some runs need, once (scripts/bundle-quickjs.mjs). */
  load(name: 'extra' | 'parser' | 'trace'): void;

  // TCP sockets, for the validation probe (native/probe.c). Errors throw an Error with `code`.
  /**
   * A non-blocking TCP socket's fd. With uid and gid: the socket is theirs (made with them as the
   * file-system ids of the moment, what the kernel's owner matches read); throws EPERM when this
   * process can take neither.
   */
  socket(family: 4 | 6, uid?: number, gid?: number): number;
  /** The address and port of the socket's own end, or (peer) of its far end. */
  address(fd: number, peer: boolean): { address: string; port: number };
  /** bind to address:port, then listen. */
  listen(fd: number, address: string, port: number): void;
  /** A waiting connection's fd (non-blocking), -1 when none. */
  accept(fd: number): number;
  /**
   * true when connected at once, false while in progress (wait for 'w', then socketError); bound
   * first to the local address `from` (any port) when given.
   */
  connect(fd: number, address: string, port: number, from?: string): boolean;
  /** The socket's pending error (ECONNREFUSED, ...), or null. */
  socketError(fd: number): string | null;
  /** What is there: "" at end of stream, null when nothing has arrived yet. */
  recv(fd: number): string | null;
  /** Bytes written, -1 when the socket takes none now. */
  send(fd: number, text: string): number;
  /** Closes fd; a wait pending on it is dropped without a call. */
  close(fd: number): void;
  /** done(true) once fd is readable ('r') or writable ('w'), done(false) after timeoutMs; fd -1: a timer. */
  wait(fd: number, what: 'r' | 'w', timeoutMs: number, done: (ready: boolean) => void): void;
  /** A monotonic clock, ms. */
  now(): number;
  /** The wall clock: microseconds since the epoch (CLOCK_REALTIME). */
  wallClock(): number;
  /**
   * Open a network namespace's file (native/netns.c): opened O_PATH, checked to be on nsfs,
   * reopened through /proc/self/fd and checked to be a network namespace. Its fd (kept open) and
   * id ("net:[inode]"). Throws an Error with `code` (an errno's name, or ENOTNETNS with `found`).
   */
  openNamespace(path: string): { fd: number; id: string };
  /**
   * One attempt at the run lock `name` (both forms of the abstract name) in namespace `ns` (an fd;
   * null: ours): held, or who holds the forms in use (what this attempt bound stays bound).
   */
  lockAttempt(name: string, ns: number | null): LockAttempt;
  /** Hold what the last attempt bound (the names in use are held by no run of ours). */
  lockKeep(): void;
  /** Give up the lock, or what the last attempt bound. */
  lockRelease(): void;
  /**
   * Routing over rtnetlink (native/netlink.c), in namespace `ns` (an fd; null: ours). op 0 add,
   * 1 del; kind 0 fwmark rule, 1 local default route via lo, 2 address on lo; family 4 or 6.
   * null when done, else what failed.
   */
  netlinkChange(ns: number | null, op: 0 | 1, kind: 0 | 1 | 2, family: 4 | 6, mark: number, table: number, address: string, prefixLength: number): NetlinkFailure | null;
  /** Dump rules (kind 0), routes (1) or addresses (2, every interface's) of a family; throws a NetlinkError. */
  netlinkDump(ns: number | null, kind: 0, family: 4 | 6): NetlinkDump<NetlinkRule>;
  netlinkDump(ns: number | null, kind: 1, family: 4 | 6): NetlinkDump<NetlinkRoute>;
  netlinkDump(ns: number | null, kind: 2, family: 4 | 6): NetlinkDump<NetlinkAddress>;
  /** The nf_tables tables of family ip (4) or ip6 (6); throws a NetlinkError. */
  netlinkTables(ns: number | null, family: 4 | 6): string[];

  // Only in the istio-cni plugin's build (native/cni.c); absent in the entrypoint's.
  /** A non-blocking unix stream socket connected to path, its fd (use recv, send, wait, close). */
  unixConnect?(path: string): number;
  /** "<device>:<inode>" of what path names (stat); equal ids: the same namespace. */
  fileId?(path: string): string;
}

/** What one attempt at the run lock found. */
export type LockAttempt =
  | { readonly held: true }
  | {
      readonly held: false;
      /** Each form of the name in use, and what holds it. */
      readonly holders: readonly {
        readonly form: 'padded' | 'exact';
        /** Whether a connection got in (our holders listen and accept). */
        readonly listening: boolean;
        /** The holder's pid as this process sees it; 0: not listening, or not visible from here. */
        readonly pid: number;
        readonly uid: number | null;
        /** CAP_NET_ADMIN in its effective set; null when it could not be read. */
        readonly netAdmin: boolean | null;
      }[];
    };

/** A netlink change that failed: the kernel's answer (errno, extended ack) or what failed before it. */
export interface NetlinkFailure {
  readonly errno: number;
  readonly code: string;
  /** strerror's text. */
  readonly text: string;
  /** The kernel's extended ack message, when it gave one. */
  readonly extack: string | null;
  readonly where: 'kernel' | 'namespace' | 'socket' | 'device';
}

export interface NetlinkDump<T> {
  /** lo's interface index in that namespace. */
  readonly lo: number;
  readonly items: readonly T[];
}
export interface NetlinkRule {
  readonly table: number;
  readonly action: number;
  readonly mark: number | null;
  readonly mask: number | null;
  readonly priority: number;
}
export interface NetlinkRoute {
  readonly table: number;
  readonly type: number;
  readonly dstLength: number;
  readonly oif: number | null;
}
export interface NetlinkAddress {
  readonly index: number;
  readonly prefixLength: number;
  readonly address: string;
}

export const host: Host | undefined = (globalThis as { __host?: Host }).__host;
