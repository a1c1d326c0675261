import { existsSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Family, Plan, RouteStep } from '../model/rule.js';
import type { IptablesBackend } from '../config/values.js';
import type { RunConfig } from '../config/config.js';
import { ownerResolver } from '../config/host.js';
import { namespaceFile, NOT_FOUND, prefixFor, type Runner } from '../apply/commands.js';
import type { DiffReport } from '../apply/diff.js';

/*
 * Acting on a network namespace through the library: apply, cleanup and diff, each with a runner
 * the caller may replace. Built on the CLI's own apply code (apply/apply.ts, apply/nft.ts,
 * apply/diff.ts), loaded when first called, so that importing the package loads none of it.
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

/** Where and how `apply`, `cleanup` and `diff` run their commands. */
export interface NamespaceOptions {
  /**
   * The network namespace: a name under /var/run/netns, or a path such as /proc/PID/ns/net.
   * Absent: the namespace the runner runs in (the current one for the default runner).
   */
  readonly namespace?: string | undefined;
  /**
   * Runs every command. Default: child processes of this process, each bounded by `timeoutMs`;
   * then a named namespace must exist (else a {@link ConfigError} naming option `namespace`).
   */
  readonly runner?: CommandRunner | undefined;
  /** Receives what the run decides and does, as the CLI logs it. Default: nothing is logged. `console` fits. */
  readonly logger?: Logger | undefined;
  /** The iptables backend instead of detecting it, as `--force-iptables-binary`. */
  readonly backend?: IptablesBackend | undefined;
  /** The default runner's bound per command, in ms (default 60000). */
  readonly timeoutMs?: number | undefined;
}

/** Options of {@link apply}; the defaults are the CLI's. */
export interface ApplyOptions extends NamespaceOptions {
  /** Program native nftables tables (Istio's layout, `nft -f -`) instead of iptables, as `--native-nftables`. */
  readonly nftables?: boolean | undefined;
  /** With `nftables`: long lists as anonymous sets, as `--nft-sets`. */
  readonly nftSets?: boolean | undefined;
  /** Heal drift in our rules (default true); false: fail on drift and change nothing, as `--reconcile=false`. */
  readonly reconcile?: boolean | undefined;
  /** Re-apply even when the namespace already holds exactly the plan, as `--force-apply`. */
  readonly force?: boolean | undefined;
}

/** Options of {@link cleanup}. */
export interface CleanupOptions extends NamespaceOptions {
  /** Remove our native nftables tables (and routing steps) instead of our iptables rules. */
  readonly nftables?: boolean | undefined;
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
  /** Per family the plan has. */
  readonly families: { readonly [F in Family]?: FamilyOutcome };
  /** Routing steps added, in order. */
  readonly routesAdded: readonly RouteStep[];
  /** Routing steps removed (cleanup), in order. */
  readonly routesRemoved: readonly RouteStep[];
}

/** What {@link apply} or {@link cleanup} did with native nftables. */
export interface NftablesReport {
  readonly kind: 'nftables';
  /** What happened to our three inet tables, as one transaction. */
  readonly outcome: FamilyOutcome;
  /** Routing steps added, in order. */
  readonly routesAdded: readonly RouteStep[];
  /** Routing steps removed (cleanup), in order. */
  readonly routesRemoved: readonly RouteStep[];
}

/** The typed result of {@link apply} and {@link cleanup}. */
export type ApplyReport = IptablesReport | NftablesReport;

/** Options of {@link diff}: where to read. */
export type DiffOptions = NamespaceOptions;

const SILENT: Logger = { error() {}, warn() {}, info() {}, debug() {}, enabled: () => false };

interface Target {
  readonly runner: Runner;
  /** A lighter runner for the fast path of a fresh namespace (the default runner's only). */
  readonly fastRunner: Runner;
  readonly log: Logger;
  /** Commands run in this process's own namespace, so /proc/net describes it. */
  readonly local: boolean;
}

/** The caller's runner in the apply code's contract: namespace prefix added, rejections made failures. */
function adapt(run: CommandRunner, namespace: string | undefined): Runner {
  const prefix = prefixFor(namespace);
  return {
    async run(argv, input) {
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

async function target(o: NamespaceOptions): Promise<Target> {
  const log = o.logger ?? SILENT;
  if (o.runner !== undefined) {
    const runner = adapt(o.runner, o.namespace);
    return { runner, fastRunner: runner, log, local: false };
  }
  const ns = o.namespace;
  if (ns !== undefined && !existsSync(namespaceFile(ns) ?? '')) {
    throw new ConfigError({ kind: 'option', name: 'namespace' }, ns, 'an existing network namespace (a name under /var/run/netns or a path)');
  }
  const { processRunner, spawnRunner } = await import('../apply/runner.js');
  const given = o.timeoutMs === undefined ? { namespace: ns } : { namespace: ns, timeoutMs: o.timeoutMs };
  return { runner: processRunner(given), fastRunner: spawnRunner(given), log, local: ns === undefined };
}

async function run(plan: Plan, o: ApplyOptions, cleanupOnly: boolean): Promise<ApplyReport> {
  const t = await target(o);
  if (o.nftables === true) {
    const { applyNft } = await import('../apply/nft.js');
    const r = await applyNft(plan, { runner: t.runner, log: t.log, reconcile: o.reconcile ?? true, cleanupOnly, sets: o.nftSets === true });
    return { kind: 'nftables', outcome: r.outcome, routesAdded: r.routesAdded, routesRemoved: r.routesRemoved };
  }
  const [{ applyPlan }, { quickBackend, readProcNet }, { LOCK_WAIT_SECONDS }] = await Promise.all([
    import('../apply/apply.js'),
    import('../apply/detect.js'),
    import('../apply/early.js'),
  ]);
  const r = await applyPlan(plan, {
    runner: t.runner,
    log: t.log,
    owners: ownerResolver(),
    forceBackend: o.backend,
    reconcile: o.reconcile ?? true,
    forceApply: o.force === true,
    cleanupOnly,
    lockWaitSeconds: LOCK_WAIT_SECONDS,
    quickBackend: quickBackend(o.backend, t.local, readProcNet),
    fastRunner: t.fastRunner,
  });
  return { kind: 'iptables', backend: r.backend.name, evidence: r.evidence, families: r.families, routesAdded: r.routesAdded, routesRemoved: r.routesRemoved };
}

/**
 * Apply a plan to a network namespace, as the CLI does without `--dry-run`: with iptables, one
 * `iptables-restore --noflush` transaction per family (nothing when the namespace already holds
 * exactly the plan; drift reconciled unless `reconcile: false`), then the missing routing steps;
 * with `nftables`, one `nft -f -` transaction. All or nothing: if any step fails, every table
 * touched and every route added is put back as it was, then an {@link ApplyError} is thrown.
 */
export function apply(plan: Plan, options: ApplyOptions = {}): Promise<ApplyReport> {
  return run(plan, options, false);
}

/**
 * Remove everything of ours from a network namespace, as `--cleanup-only`: our chains, the jumps
 * to them and our rules in built-in chains (foreign rules stay), the plan's fwmark rules, local
 * routes and `::6` on lo; with `nftables`, our inet tables. Rolled back on failure, as {@link apply}.
 */
export function cleanup(plan: Plan, options: CleanupOptions = {}): Promise<ApplyReport> {
  return run(plan, options, true);
}

/**
 * Compare a network namespace's live iptables rules and routing with the plan, rule by rule, as
 * `istio-iptables diff`. Changes nothing. {@link renderDiff} prints the report as the CLI does.
 */
export async function diff(plan: Plan, options: DiffOptions = {}): Promise<DiffReport> {
  const t = await target(options);
  const { diffPlan } = await import('../apply/diff.js');
  return diffPlan(plan, t.runner, options.backend, ownerResolver());
}

/**
 * The options the CLI takes from its flags for applying (`--network-namespace`,
 * `--force-iptables-binary`, `--native-nftables`, `--nft-sets`, `--reconcile`, `--force-apply`),
 * for `apply(plan, { ...applyOptionsFrom(config.run), runner, logger })`. `--cleanup-only` is
 * the caller's choice of {@link cleanup} instead.
 */
export function applyOptionsFrom(run: RunConfig): ApplyOptions {
  return {
    namespace: run.networkNamespace,
    backend: run.forceIptablesBinary,
    nftables: run.nativeNftables,
    nftSets: run.nftSets,
    reconcile: run.reconcile,
    force: run.forceApply,
  };
}
