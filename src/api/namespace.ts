import { ApplyError, ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Family, Plan, RouteStep } from '../model/rule.js';
import type { IptablesBackend } from '../config/values.js';
import type { RunConfig } from '../config/config.js';
import { detectHost, ownerResolver, type HostFacts } from '../config/host.js';
import { namespaceFile, NOT_FOUND, notStarted, prefixFor, runDeadline, type RunDeadline, type Runner } from '../apply/commands.js';
import { LOCK_WAIT_SECONDS } from '../apply/early.js';
import { withRunLock } from '../apply/lock.js';
import { ipv6Fact, loopbackIpv6Fact } from '../apply/facts.js';
import { otherBackendWarning } from '../apply/detect.js';
import { logRulesAfter } from '../log-blocks.js';
import { applyFresh } from '../apply/fresh.js';
import type { IptablesContext, IptablesOutcome } from '../apply/iptables.js';
import { probeElsewhere, type ProbeOptions, type ProbeResult } from '../apply/probe.js';
import type { DiffReport } from '../apply/diff.js';
import { NamespaceError, type Fact, type Kernel, type LockPrimitive, type Namespace } from '../platform/platform.js';
// The runtime's platform: the bundler puts platform/quickjs/platform.ts in its place in the entrypoint.
import { platform } from '../platform/node.js';

/*
 * The one door into a network namespace: the only code that changes or reads one. The Node CLI,
 * the entrypoint, the library's callers (and a CNI plugin or node agent) all come through here;
 * they parse, print and map errors to exit codes. A call opens the namespace once (checked, held
 * by its descriptor), reads the facts it needs there, takes the namespace's run lock, and runs one
 * transaction (apply/engine.ts): iptables (apply/fresh.ts, apply/careful.ts) or native nftables
 * (apply/nft.ts), and the routing. What only some runs need is loaded when first called, so that
 * importing the package loads none of it.
 */

/** What a command did, as a {@link CommandRunner} reports it. */
export interface CommandResult {
  /** The exit code; 127 when the program could not be found (as a shell reports it). */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs one command and reports what it did: `argv[0]` is the program (looked up on PATH), the
 * rest its arguments; `stdin`, when given, is written to the command's standard input, which is
 * then closed (without it, the command gets no input). A command that ran and failed resolves
 * with its exit code; a rejected promise counts as a failed command (exit code -1, the error
 * message as stderr), so an apply that meets one still rolls back. For a namespace, commands
 * arrive already prefixed with `ip netns exec NAME` (a name) or `nsenter --net=PATH --` (a path).
 */
export type CommandRunner = (argv: readonly string[], stdin?: string) => Promise<CommandResult>;

/** Where and how `apply`, `cleanup` and `diff` run; the settings under the option table's names. */
export interface NamespaceOptions {
  /**
   * The network namespace, as `--network-namespace`: a name under /var/run/netns, or a path such
   * as /proc/PID/ns/net. Absent: the namespace the runner runs in (this one for the default runner).
   */
  readonly networkNamespace?: string | undefined;
  /**
   * Runs every command. Default: this runtime's own (child processes of this process, each bounded
   * by `timeoutMs`); then the namespace is opened and checked first (else a {@link ConfigError}
   * naming option `networkNamespace`), its run lock taken, and its facts read there. A runner of
   * your own gets commands only (no lock: it may run them anywhere).
   */
  readonly runner?: CommandRunner | undefined;
  /** Receives what the run decides and does, as the CLI logs it. Default: nothing is logged. `console` fits. */
  readonly logger?: Logger | undefined;
  /** The iptables backend instead of detecting it, as `--force-iptables-binary`. */
  readonly forceIptablesBinary?: IptablesBackend | undefined;
  /** The default runner's bound per command, in ms (default 60000). */
  readonly timeoutMs?: number | undefined;
  /** The default runner's environment for its commands (PATH finds the programs); default: this process's. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
}

/** Options of {@link apply}; the defaults are the CLI's. */
export interface ApplyOptions extends NamespaceOptions {
  /** Program native nftables tables (Istio's layout, `nft -f -`) instead of iptables, as `--native-nftables`. */
  readonly nativeNftables?: boolean | undefined;
  /** With `nativeNftables`: long lists as anonymous sets, as `--nft-sets`. */
  readonly nftSets?: boolean | undefined;
  /** Heal drift in our rules (default true); false: fail on drift and change nothing, as `--reconcile=false`. */
  readonly reconcile?: boolean | undefined;
  /** Re-apply even when the namespace already holds exactly the plan, as `--force-apply`. */
  readonly forceApply?: boolean | undefined;
  /**
   * The run's deadline in ms, as `--run-timeout`: every command and the wait for the run lock get
   * at most what is left of it; past it no command starts but those undoing the run's changes,
   * which are undone, and the call throws. Default: none (the CLI's is 60 s).
   */
  readonly runTimeoutMs?: number | undefined;
}

/** Options of {@link cleanup}. */
export interface CleanupOptions extends NamespaceOptions {
  /** Remove our native nftables tables (and routing steps) instead of our iptables rules, as `--native-nftables`. */
  readonly nativeNftables?: boolean | undefined;
  /** The run's deadline in ms, as `--run-timeout` (see {@link ApplyOptions.runTimeoutMs}). */
  readonly runTimeoutMs?: number | undefined;
}

/** What happened to one address family's rules (or, with nftables, to our tables). */
export type FamilyOutcome = 'applied' | 'unchanged' | 'reconciled' | 'cleaned' | 'nothing to clean';

/** What {@link apply} or {@link cleanup} did with iptables. */
export interface IptablesReport {
  readonly kind: 'iptables';
  /** The backend used (`default`: plain `iptables`, neither -nft nor -legacy available). */
  readonly backend: IptablesBackend | 'default';
  /** Why that backend: what detection found, or that it was forced. */
  readonly evidence: string;
  /** Per family changed or compared: the plan's, and one an earlier run left rules of ours in. */
  readonly families: { readonly [F in Family]?: FamilyOutcome };
  /** Routing steps added, in order. */
  readonly routesAdded: readonly RouteStep[];
  /** Routing steps removed (cleanup, or what the plan no longer has), in order. */
  readonly routesRemoved: readonly RouteStep[];
}

/** What {@link apply} or {@link cleanup} did with native nftables. */
export interface NftablesReport {
  readonly kind: 'nftables';
  /** What happened to our three inet tables, as one transaction. */
  readonly outcome: FamilyOutcome;
  /** Routing steps added, in order. */
  readonly routesAdded: readonly RouteStep[];
  /** Routing steps removed (cleanup, or what the plan no longer has), in order. */
  readonly routesRemoved: readonly RouteStep[];
}

/** The typed result of {@link apply} and {@link cleanup}. */
export type ApplyReport = IptablesReport | NftablesReport;

/** Options of {@link diff}: where to read. */
export type DiffOptions = NamespaceOptions;

/** Options of {@link NamespaceTarget.hostFacts}. */
export interface HostFactsOptions {
  /** The environment the proxy uid's user name is read from (ENVOY_USER); default: this process's. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Which of the namespace's facts to read (default: both): its addresses (for IPv6), lo's IPv6. */
  readonly read?: { readonly addresses?: boolean; readonly loopback?: boolean } | undefined;
}

/**
 * A network namespace opened for a run (see {@link openNamespace}): its facts, apply, cleanup,
 * diff and the validation probe, all in the namespace it was opened as. Close it when done.
 */
export interface NamespaceTarget {
  /** Where it is, for messages: `(in /var/run/netns/pod, net:[4026532241])`, or `(this namespace)`. */
  readonly where: string;
  /**
   * Host facts for the configuration with the namespace's own facts: IPv6 as Istio decides it, on
   * the namespace's interface addresses, and lo's IPv6 (its disable_ipv6), each read there; the
   * proxy uid and DNS servers from this process's files, as {@link detectHost} reads them.
   */
  hostFacts(options?: HostFactsOptions): Promise<HostFacts>;
  /** Whether to plan IPv6 (Istio's rule on the namespace's addresses), and where that was read. */
  ipv6(dualStack: boolean): Promise<Fact<boolean>>;
  /** Whether the namespace's lo has IPv6, and where that was read. */
  loopbackIpv6(): Promise<Fact<boolean>>;
  apply(plan: Plan, options?: Omit<ApplyOptions, keyof NamespaceOptions | 'forceIptablesBinary'> & Pick<NamespaceOptions, 'forceIptablesBinary'>): Promise<ApplyReport>;
  cleanup(plan: Plan, options?: Pick<CleanupOptions, 'nativeNftables' | 'forceIptablesBinary' | 'runTimeoutMs'>): Promise<ApplyReport>;
  diff(plan: Plan, options?: Pick<DiffOptions, 'forceIptablesBinary'>): Promise<DiffReport>;
  /** The validation probe, in the namespace (there by this program run again, when it is not this one). */
  probe(options: ProbeOptions): Promise<ProbeResult>;
  close(): void;
}

const SILENT: Logger = { error() {}, warn() {}, info() {}, debug() {}, enabled: () => false };

/** Every option the door takes, and what the names of an earlier release are now. */
const KNOWN = ['networkNamespace', 'runner', 'logger', 'forceIptablesBinary', 'timeoutMs', 'env', 'nativeNftables', 'nftSets', 'reconcile', 'forceApply', 'runTimeoutMs'];
const RENAMED: Readonly<Record<string, string>> = { namespace: 'networkNamespace', backend: 'forceIptablesBinary', nftables: 'nativeNftables', force: 'forceApply' };

/**
 * Refuse an option the door does not know: from JavaScript, a misspelt or renamed `networkNamespace`
 * would otherwise quietly mean this process's own namespace.
 */
function checkOptions(options: object): void {
  for (const key of Object.keys(options)) {
    if (KNOWN.includes(key)) continue;
    const now = RENAMED[key];
    throw new ConfigError({ kind: 'option', name: key }, String((options as Record<string, unknown>)[key]), now === undefined ? `one of the options ${KNOWN.join(', ')}` : `${now} (this option's name now)`);
  }
}

/**
 * The caller's runner in the apply code's contract: namespace prefix added, rejections made
 * failures; past the run's deadline, nothing started but what undoes the run's changes.
 */
function adapt(run: CommandRunner, namespace: string | undefined, deadline?: RunDeadline): Runner {
  const prefix = prefixFor(namespace);
  return {
    async run(argv, input) {
      if (deadline !== undefined && deadline.left() <= 0) return notStarted(deadline);
      let r: CommandResult;
      try {
        r = await run([...prefix, ...argv], input);
      } catch (err) {
        return { exitCode: -1, stdout: '', stderr: err instanceof Error ? err.message : String(err), notFound: false };
      }
      const stderr = String(r.stderr);
      return { exitCode: r.exitCode, stdout: String(r.stdout), stderr, notFound: r.exitCode === 127 || (prefix.length > 0 && NOT_FOUND.test(stderr)) };
    },
  };
}

/**
 * Open a network namespace for a run: checked to be a network namespace without blocking (a FIFO
 * given as one is refused, not waited on) and held by its descriptor, so that every later use is
 * the namespace checked. A namespace that cannot be opened: a {@link ConfigError} naming option
 * `networkNamespace` (the CLI names --network-namespace).
 */
export async function openNamespace(options: NamespaceOptions = {}): Promise<NamespaceTarget> {
  checkOptions(options);
  const log = options.logger ?? SILENT;
  const given = options.networkNamespace;
  let ns: Namespace | undefined;
  let runner: Runner;
  let kernel: Kernel;
  let lock: LockPrimitive | undefined;
  let where: string;
  /** A kernel through a caller's runner's commands. */
  let viaCommands: ((r: Runner) => Kernel) | undefined;
  if (options.runner !== undefined) {
    runner = adapt(options.runner, given);
    const place = given === undefined ? "(the runner's namespace)" : `(in ${given}, through the runner)`;
    where = place;
    // (Loaded here: the entrypoint reads it only for a caller's runner, from its extra script.)
    const { commandKernel } = await import('../apply/command-kernel.js');
    viaCommands = (r) => commandKernel(r, false, place);
    kernel = viaCommands(runner);
  } else {
    if (given !== undefined) {
      try {
        ns = await platform.openNamespace(namespaceFile(given) ?? given, given);
      } catch (err) {
        if (!(err instanceof NamespaceError)) throw err;
        throw new ConfigError({ kind: 'option', name: 'networkNamespace' }, given, `an existing network namespace (a name under /var/run/netns or a path), but ${err.message}`);
      }
    }
    runner = platform.runner(ns, { timeoutMs: options.timeoutMs, env: options.env });
    kernel = platform.kernel(ns, runner);
    lock = platform.lock(ns);
    where = ns === undefined ? '(this namespace)' : `(in ${ns.file}, ${ns.id})`;
  }
  /** What one call changes the namespace with: under the call's deadline, when it has one. */
  interface Call {
    readonly runner: Runner;
    readonly kernel: Kernel;
    readonly deadline?: RunDeadline | undefined;
  }
  const call = (runTimeoutMs: number | undefined): Call => {
    if (runTimeoutMs === undefined) return { runner, kernel };
    const deadline = runDeadline(runTimeoutMs);
    if (options.runner !== undefined && viaCommands !== undefined) {
      const r = adapt(options.runner, given, deadline);
      return { runner: r, kernel: viaCommands(r), deadline };
    }
    const r = platform.runner(ns, { timeoutMs: options.timeoutMs, env: options.env, deadline });
    return { runner: r, kernel: platform.kernel(ns, r), deadline };
  };
  const locked = <T>(c: Call, fn: () => Promise<T>): Promise<T> => (lock === undefined ? fn() : withRunLock(lock, LOCK_WAIT_SECONDS, log, platform, fn, c.deadline));
  const context = (c: Call, o: { forceIptablesBinary?: IptablesBackend | undefined }, cleanupOnly: boolean, reconcile = true, forceApply = false): IptablesContext => ({
    runner: c.runner,
    kernel: c.kernel,
    deadline: c.deadline,
    log,
    owners: ownerResolver(),
    forceIptablesBinary: o.forceIptablesBinary ?? options.forceIptablesBinary,
    reconcile,
    forceApply,
    cleanupOnly,
    lockWaitSeconds: LOCK_WAIT_SECONDS,
  });
  const iptables = async (plan: Plan, ctx: IptablesContext): Promise<ApplyReport> => {
    if (ctx.forceIptablesBinary !== undefined) {
      // The kernel runs both backends' rules: a forced run neither sees nor removes the other's.
      const mixed = await otherBackendWarning(ctx.runner, ctx.forceIptablesBinary);
      if (mixed !== undefined) log.warn(mixed, { warning: 'other-backend-has-rules' });
    }
    let r: IptablesOutcome | undefined = !ctx.cleanupOnly && !ctx.forceApply ? await applyFresh(plan, ctx) : undefined;
    if (r === undefined) r = await (await import('../apply/careful.js')).applyCareful(plan, ctx);
    // The rules after, as the namespace's own save prints them (only when the log would show them).
    await logRulesAfter(log, ctx.runner, { kind: 'iptables', save: r.backend.save, families: (['ipv4', 'ipv6'] as const).filter((f) => r?.families[f] !== undefined) });
    return { kind: 'iptables', backend: r.backend.name, evidence: r.evidence, families: r.families, routesAdded: r.routesAdded, routesRemoved: r.routesRemoved };
  };
  const nftables = async (c: Call, plan: Plan, cleanupOnly: boolean, reconcile: boolean, nftSets: boolean): Promise<ApplyReport> => {
    const r = await (await import('../apply/nft.js')).applyNft(plan, { runner: c.runner, kernel: c.kernel, deadline: c.deadline, log, reconcile, cleanupOnly, nftSets });
    await logRulesAfter(log, c.runner, { kind: 'nftables' });
    return { kind: 'nftables', ...r };
  };
  let addresses: ReturnType<Kernel['addresses']> | undefined;
  let loopback: Promise<Fact<boolean>> | undefined;
  const target: NamespaceTarget = {
    where,
    async ipv6(dualStack) {
      try {
        return ipv6Fact(await (addresses ??= kernel.addresses()), dualStack);
      } catch (cause) {
        addresses = undefined;
        // Never "no addresses": that would quietly plan IPv4 only.
        throw new ApplyError(`cannot list the interface addresses ${where} to decide IPv6 (set --enable-ipv6 to avoid it): ${cause instanceof Error ? cause.message : String(cause)}`, [], '', { cause });
      }
    },
    loopbackIpv6: () => (loopback ??= loopbackIpv6Fact(kernel)),
    async hostFacts(o = {}) {
      const read = { addresses: o.read?.addresses !== false, loopback: o.read?.loopback !== false };
      const base = detectHost(o.env ?? options.env ?? process.env, (m) => log.info(m));
      const facts = { v4: read.addresses ? await target.ipv6(false) : undefined, dual: read.addresses ? await target.ipv6(true) : undefined, lo: read.loopback ? await target.loopbackIpv6() : undefined };
      return {
        proxyUid: () => base.proxyUid(),
        dnsServers: () => base.dnsServers(),
        ipv6Enabled(dualStack) {
          const f = dualStack ? facts.dual : facts.v4;
          if (f === undefined) throw new Error('the namespace\'s addresses were not read (set --enable-ipv6 to avoid it)');
          log.info(`IPv6 ${f.value ? 'enabled' : 'disabled'} (Istio's rule${dualStack ? ' for dual stack' : ''} on ${f.source})`);
          return f.value;
        },
        loopbackIpv6() {
          if (facts.lo === undefined) return true;
          if (!facts.lo.value) log.info(`IPv6 is disabled on lo (${facts.lo.source})`);
          return facts.lo.value;
        },
      };
    },
    apply(plan, o = {}) {
      const c = call(o.runTimeoutMs);
      return locked(c, () => (o.nativeNftables === true ? nftables(c, plan, false, o.reconcile ?? true, o.nftSets === true) : iptables(plan, context(c, o, false, o.reconcile ?? true, o.forceApply === true))));
    },
    cleanup(plan, o = {}) {
      const c = call(o.runTimeoutMs);
      return locked(c, () => (o.nativeNftables === true ? nftables(c, plan, true, true, false) : iptables(plan, context(c, o, true))));
    },
    async diff(plan, o = {}) {
      const { diffPlan } = await import('../apply/diff.js');
      return diffPlan(plan, runner, kernel, o.forceIptablesBinary ?? options.forceIptablesBinary, ownerResolver());
    },
    probe(o) {
      if (options.runner !== undefined) return probeElsewhere(runner, platform.selfCommand(), o, log);
      if (ns === undefined) return platform.runProbe(o);
      // Bounded by the probe's own timeout, plus time to start and end.
      return probeElsewhere(platform.runner(ns, { timeoutMs: o.timeoutMs + 10_000, env: options.env }), platform.selfCommand(), o, log);
    },
    close() {
      if (ns !== undefined) platform.closeNamespace(ns);
      ns = undefined;
    },
  };
  return target;
}

/** Open the namespace, do one thing there, close it. */
async function once<T>(options: NamespaceOptions, fn: (t: NamespaceTarget) => Promise<T>): Promise<T> {
  const t = await openNamespace(options);
  try {
    return await fn(t);
  } finally {
    t.close();
  }
}

/**
 * Apply a plan to a network namespace, as the CLI does without `--dry-run`: with iptables, one
 * `iptables-restore --noflush` transaction per family (nothing when the namespace already holds
 * exactly the plan; drift, and what an earlier run of the other mode left, reconciled unless
 * `reconcile: false`), then the routing steps missing added and those it no longer has removed;
 * with `nativeNftables`, one `nft -f -` transaction. All or nothing: if any step fails, every
 * table touched is put back as it was (tables the run created deleted), every route changed is
 * changed back, then an {@link ApplyError} is thrown.
 */
export function apply(plan: Plan, options: ApplyOptions = {}): Promise<ApplyReport> {
  return once(options, (t) => t.apply(plan, options));
}

/**
 * Remove everything of ours from a network namespace, as `--cleanup-only`: our chains, the jumps
 * to them and our rules in built-in chains under either mode (foreign rules stay), the fwmark
 * rules, local routes and `::6` on lo a run of ours adds; with `nativeNftables`, our inet tables.
 * Rolled back on failure, as {@link apply}.
 */
export function cleanup(plan: Plan, options: CleanupOptions = {}): Promise<ApplyReport> {
  return once(options, (t) => t.cleanup(plan, options));
}

/**
 * Compare a network namespace's live iptables rules and routing with the plan, rule by rule, as
 * `istio-iptables diff`: what is missing, and what of ours is there that the plan does not have
 * (extra rules in our chains, our jumps and marks in built-in chains, stale routing). Changes
 * nothing. {@link renderDiff} prints the report as the CLI does.
 */
export function diff(plan: Plan, options: DiffOptions = {}): Promise<DiffReport> {
  return once(options, (t) => t.diff(plan));
}

/**
 * The options the CLI takes from its flags for applying (`--network-namespace`,
 * `--force-iptables-binary`, `--native-nftables`, `--nft-sets`, `--reconcile`, `--force-apply`),
 * under the same names, for `apply(plan, { ...applyOptionsFrom(config.run), runner, logger })`.
 * `--cleanup-only` is the caller's choice of {@link cleanup} instead.
 */
export function applyOptionsFrom(run: RunConfig): ApplyOptions {
  return {
    networkNamespace: run.networkNamespace,
    forceIptablesBinary: run.forceIptablesBinary,
    nativeNftables: run.nativeNftables,
    nftSets: run.nftSets,
    reconcile: run.reconcile,
    forceApply: run.forceApply,
    runTimeoutMs: run.runTimeoutMs,
  };
}
