import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import { logLoaded } from '../log-blocks.js';
import { undoing, withNamespaceLock, type RunDeadline } from './commands.js';
import type { Family, FamilyRules, Plan, RouteStep } from '../model/rule.js';
import { renderRestore, writeRestore } from '../render/restore.js';
import { routeArgs } from '../render/ip.js';
import type { Backend } from './detect.js';
import { restoreCommand } from './early.js';
import { ipRoutes } from './ip-routes.js';
import { changeArgs, type RouteBackend } from './routes.js';
import type { Runner, RunResult } from './runner.js';
import type { OwnerResolver } from './saveform.js';
import { committedBefore, failedLine, removalPayload, tablesOf } from './state.js';
import type { IptablesBackend } from '../config/values.js';

export interface ApplyOptions {
  readonly runner: Runner;
  readonly log: Logger;
  readonly owners: OwnerResolver;
  readonly forceBackend?: IptablesBackend | undefined;
  /** Heal drift by removing ours and applying again (default true). */
  readonly reconcile: boolean;
  /** Apply even when the namespace already matches. */
  readonly forceApply: boolean;
  /** Remove everything of ours and apply nothing. */
  readonly cleanupOnly: boolean;
  /** Seconds to wait for the xtables lock (legacy backend). */
  readonly lockWaitSeconds: number;
  /**
   * A backend known without running anything (forced, or no legacy tables in this namespace).
   * When given, a fresh namespace is programmed without reading its state first.
   */
  readonly quickBackend?: { readonly backend: Backend; readonly evidence: string } | undefined;
  /** Runner for that fast path (a lighter one); defaults to `runner`. */
  readonly fastRunner?: Runner | undefined;
  /** How routing steps reach the kernel; defaults to `ip` through the runner (the fast path's runner there). */
  readonly routes?: RouteBackend | undefined;
  /**
   * The run's deadline, shared with the runners (which bound every command by it): undoing runs
   * under deadline.undoing, and once it has passed no new attempt starts.
   */
  readonly deadline?: RunDeadline | undefined;
}

export type FamilyOutcome = 'applied' | 'unchanged' | 'reconciled' | 'cleaned' | 'nothing to clean';

export interface ApplyReport {
  readonly backend: Backend;
  readonly evidence: string;
  readonly families: Partial<Record<Family, FamilyOutcome>>;
  readonly routesAdded: readonly RouteStep[];
  readonly routesRemoved: readonly RouteStep[];
}


/**
 * Apply a plan to the namespace the runner targets: one `iptables-restore --noflush` transaction
 * per family (a fresh apply, or removal of our old state plus the new rules when reconciling),
 * then the routing steps that are missing. If anything fails, every table touched is put back
 * from the dump taken before, and every route added is removed, before the error is raised.
 */
export async function applyPlan(plan: Plan, o: ApplyOptions): Promise<ApplyReport> {
  return withNamespaceLock(o.runner, o.lockWaitSeconds, () => applyLocked(plan, o), (message) => new ApplyError(message, [], ''), o.log);
}

async function applyLocked(plan: Plan, o: ApplyOptions): Promise<ApplyReport> {
  if (!o.cleanupOnly && !o.forceApply && o.quickBackend !== undefined) {
    const fast = await applyFresh(plan, o, o.quickBackend);
    if (fast !== undefined) return fast;
  }
  // The careful path reads the namespace first; it is loaded only when it runs.
  const { applyWithState } = await import('./careful.js');
  return applyWithState(plan, o);
}

/**
 * The fast path for a namespace without our rules (a pod's first start): the restore payloads
 * and the routing steps all at once, no dump first. A restore whose `-N` finds our chains
 * already there fails; then whatever this attempt committed is removed again (it is exactly
 * what the plan adds, to tables that held none of it) and the careful path takes over.
 */
async function applyFresh(plan: Plan, o: ApplyOptions, quick: { backend: Backend; evidence: string }): Promise<ApplyReport | undefined> {
  const { log } = o;
  const runner = o.fastRunner ?? o.runner;
  const { backend } = quick;
  const families: FamilyRules[] = plan.ipv6 === null ? [plan.ipv4] : [plan.ipv4, plan.ipv6];
  const restores = families.map(async (f) => {
    const bin = backend.restore[f.family];
    const { payload, r } = await restoreFamily(runner, restoreCommand(bin, o.lockWaitSeconds), f, log);
    if (r.startedEarly === true) log.debug(`${bin} had been started before the program loaded; fed its payload`);
    // A restore that never ran committed nothing; one that failed committed the tables before its
    // failing line. One that died or was killed without naming a line may have committed any of its
    // tables: each is then undone on its own, and one it never committed refuses the undo harmlessly.
    const line = failedLine(r.stderr);
    const committed = r.exitCode === 0 ? tablesOf(payload) : r.notFound ? [] : committedBefore(payload, line);
    return { family: f, bin, r, committed, certain: r.exitCode === 0 || r.notFound || line !== undefined };
  });
  const routing = o.routes ?? ipRoutes(runner);
  // The fwmark rule last in each family: adding a rule that is already there duplicates it, while
  // an address or a route already there stops the family's steps first. So in a namespace that
  // holds the routing already, this attempt adds no rule, and one killed part-way leaves nothing extra.
  const rank = { loopbackAddress: 0, localRoute: 1, fwmarkRule: 2 } as const;
  const steps = [...plan.routes].sort((a, b) => rank[a.kind] - rank[b.kind]);
  const routes = steps.length === 0 ? Promise.resolve([]) : routing.addAll(steps);
  const [rs, bs] = await Promise.all([Promise.all(restores), routes.then((xs) => xs.map((x) => ({ ...x, argv: routeArgs(x.step) })))]);
  if (rs.every((x) => x.r.exitCode === 0) && bs.every((x) => x.r.exitCode === 0)) {
    log.info(`iptables backend: ${backend.name} (${quick.evidence})`);
    const outcomes: Partial<Record<Family, FamilyOutcome>> = {};
    for (const x of rs) {
      outcomes[x.family.family] = 'applied';
      log.info(`${x.family.family}: applied (${x.committed.join(', ')})`);
    }
    const added = bs.map((x) => x.step);
    for (const x of bs) log.info(`added: ${x.argv.join(' ')}`);
    return { backend, evidence: quick.evidence, families: outcomes, routesAdded: added, routesRemoved: [] };
  }
  const why = [...rs.map((x) => (x.r.exitCode === 0 ? '' : `${x.bin}: ${firstLine(x.r.stderr)}`)), ...bs.map((x) => (x.r.exitCode === 0 ? '' : `${x.argv.join(' ')}: ${firstLine(x.r.stderr)}`))].filter(Boolean);
  log.debug(`first attempt did not apply cleanly (${why.join('; ')}); undoing it and reading the namespace state`);
  const problems: string[] = [];
  // Each undo is tried twice: a command that dies once (killed, out of memory) must not leave
  // this attempt's rules behind for the careful path to take as the namespace's own.
  const twice = async (run: () => Promise<RunResult>): Promise<RunResult> => {
    const r = await run();
    return r.exitCode === 0 ? r : run();
  };
  await undoing(o.deadline, async () => {
    for (const x of [...bs].reverse()) {
      if (x.r.exitCode !== 0) continue;
      const r = await twice(() => routing.change(x.step, 'del'));
      if (r.exitCode !== 0) problems.push(`${changeArgs(x.step, 'del').join(' ')}: ${firstLine(r.stderr)}`);
    }
    for (const x of rs) {
      if (x.committed.length === 0) continue;
      const groups = x.certain ? [x.committed] : x.committed.map((t) => [t]);
      const undone: string[] = [];
      for (const tables of groups) {
        const undo = () => runner.run(restoreCommand(x.bin, o.lockWaitSeconds), removalPayload(x.family, new Set(tables)));
        const r = await (x.certain ? twice(undo) : undo());
        if (r.exitCode === 0) undone.push(...tables);
        else if (x.certain) problems.push(`${x.bin} (undo): ${firstLine(r.stderr)}`);
      }
      if (undone.length > 0) await (await import('./careful.js')).dropTablesIfEmpty(runner, backend, x.family.family, undone, log);
    }
  });
  if (problems.length > 0) log.warn(`undoing the first attempt was incomplete: ${problems.join('; ')}`);
  if (o.deadline?.passed() === true) {
    // Past the deadline no second attempt starts: the first one's changes were undone (or the warning above says what was not).
    if (problems.length === 0) log.info('rolled back: the namespace is as it was before this run');
    throw new ApplyError(why.join('; '), [], '');
  }
  return undefined;
}

/**
 * A family's payload rendered into its restore: streamed as it is rendered when the runner can
 * start the command first (the restore then parses the first rules while the rest is rendered).
 */
async function restoreFamily(runner: Runner, argv: string[], f: FamilyRules, log: Logger): Promise<{ payload: string; r: RunResult }> {
  const stream = runner.start?.(argv);
  let payload: string;
  if (stream === undefined) {
    payload = renderRestore(f);
  } else {
    const parts: string[] = [];
    writeRestore(f, (text) => {
      parts.push(text);
      stream.write(text);
    });
    payload = parts.join('');
  }
  logLoaded(log, argv, payload, { family: f.family });
  return { payload, r: stream === undefined ? await runner.run(argv, payload) : await stream.end() };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}
