import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Family, FamilyRules, Plan, RouteStep } from '../model/rule.js';
import { renderRestore } from '../render/restore.js';
import { routeArgs } from '../render/ip.js';
import { detectBackend, type Backend } from './detect.js';
import { readRouteState, routeDelArgs } from './routes.js';
import { ipBatchCommand } from './early.js';
import type { Runner } from './runner.js';
import type { OwnerResolver } from './saveform.js';
import {
  assess,
  cleanupPayload,
  committedBefore,
  failedLine,
  removalPayload,
  isEmptyTable,
  parseSave,
  reconcilePayload,
  rollbackPayload,
  tablesOf,
  type Assessment,
  type SavedState,
} from './state.js';
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
}

export type FamilyOutcome = 'applied' | 'unchanged' | 'reconciled' | 'cleaned' | 'nothing to clean';

export interface ApplyReport {
  readonly backend: Backend;
  readonly evidence: string;
  readonly families: Partial<Record<Family, FamilyOutcome>>;
  readonly routesAdded: readonly RouteStep[];
  readonly routesRemoved: readonly RouteStep[];
}

interface Touched {
  readonly family: Family;
  readonly before: SavedState;
  readonly tables: string[];
}

/**
 * Apply a plan to the namespace the runner targets: one `iptables-restore --noflush` transaction
 * per family (a fresh apply, or removal of our old state plus the new rules when reconciling),
 * then the routing steps that are missing. If anything fails, every table touched is put back
 * from the dump taken before, and every route added is removed, before the error is raised.
 */
export async function applyPlan(plan: Plan, o: ApplyOptions): Promise<ApplyReport> {
  if (!o.cleanupOnly && !o.forceApply && o.quickBackend !== undefined) {
    const fast = await applyFresh(plan, o, o.quickBackend);
    if (fast !== undefined) return fast;
  }
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
    const payload = renderRestore(f);
    const bin = backend.restore[f.family];
    log.debug(`${bin} --noflush input:\n${payload.trimEnd()}`);
    const r = await runner.run([bin, '--noflush', `--wait=${o.lockWaitSeconds}`], payload);
    if (r.startedEarly === true) log.debug(`${bin} had been started before the program loaded; fed its payload`);
    // A restore that never ran committed nothing; one that failed committed the tables before its failing line.
    const committed = r.exitCode === 0 ? tablesOf(payload) : r.notFound ? [] : committedBefore(payload, failedLine(r.stderr));
    return { family: f, bin, r, committed };
  });
  // One `ip -batch` per family (a process costs ~1 ms on this path; a TPROXY dual-stack plan has
  // five steps). ip stops at the first failing line and names it, so each step is known to have
  // been done or not, and a failure still names its own command.
  const routes = (['ipv4', 'ipv6'] as const).flatMap((family) => {
    const steps = plan.routes.filter((s) => s.family === family);
    if (steps.length === 0) return [];
    return [
      (async () => {
        const argvs = steps.map(routeArgs);
        const batch = ipBatchCommand(family);
        const r = await runner.run(batch, argvs.map((a) => `${a.slice(2).join(' ')}\n`).join(''));
        const failed = r.exitCode === 0 ? 0 : (batchFailedLine(r.stderr) ?? 1);
        // Steps before the failing line were done; the failing one carries the result; none after ran.
        return steps.flatMap((step, i) =>
          failed !== 0 && i + 1 > failed ? [] : [{ step, argv: argvs[i] ?? [], r: failed === i + 1 ? r : { ...r, exitCode: 0 } }],
        );
      })(),
    ];
  });
  const [rs, bs] = await Promise.all([Promise.all(restores), Promise.all(routes).then((xs) => xs.flat())]);
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
  for (const x of [...bs].reverse()) {
    if (x.r.exitCode !== 0) continue;
    const r = await runner.run(routeDelArgs(x.step));
    if (r.exitCode !== 0) problems.push(`${routeDelArgs(x.step).join(' ')}: ${firstLine(r.stderr)}`);
  }
  for (const x of rs) {
    if (x.committed.length === 0) continue;
    const r = await runner.run([x.bin, '--noflush', `--wait=${o.lockWaitSeconds}`], removalPayload(x.family, new Set(x.committed)));
    if (r.exitCode !== 0) problems.push(`${x.bin} (undo): ${firstLine(r.stderr)}`);
    else await dropTablesIfEmpty(runner, backend, x.family.family, x.committed, log);
  }
  if (problems.length > 0) log.warn(`undoing the first attempt was incomplete: ${problems.join('; ')}`);
  return undefined;
}

/** The line `ip -batch -` stopped at ("Command failed -:3"), 1-based. */
export function batchFailedLine(stderr: string): number | undefined {
  const m = /Command failed -:(\d+)/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

/** Apply with the namespace's state read first: reruns, drift, reconcile, cleanup, rollback. */
async function applyWithState(plan: Plan, o: ApplyOptions): Promise<ApplyReport> {
  const { runner, log } = o;
  const detection = await detectBackend(runner, o.forceBackend);
  const backend = detection.backend;
  log.info(`iptables backend: ${backend.name} (${detection.evidence})`);

  const families: FamilyRules[] = plan.ipv6 === null ? [plan.ipv4] : [plan.ipv4, plan.ipv6];
  const before = new Map<Family, SavedState>([['ipv4', detection.ipv4State]]);
  if (plan.ipv6 !== null || o.cleanupOnly) {
    const r = await runner.run([backend.save.ipv6]);
    if (r.exitCode === 0) before.set('ipv6', parseSave(r.stdout));
    else if (plan.ipv6 !== null) throw commandError(`${backend.save.ipv6} failed`, [backend.save.ipv6], r);
    else log.debug(`${backend.save.ipv6} unavailable (${r.stderr.trim() || `exit ${r.exitCode}`}); IPv6 is off, skipping it`);
  }

  const assessments = new Map<Family, Assessment>();
  for (const f of families) assessments.set(f.family, assess(before.get(f.family) ?? new Map(), f, o.owners));
  if (o.cleanupOnly && plan.ipv6 === null && before.has('ipv6')) {
    // Cleanup also clears IPv6 leftovers from an earlier dual-stack run.
    const emptyV6: FamilyRules = { family: 'ipv6', rules: [], chains: new Map() };
    assessments.set('ipv6', assess(before.get('ipv6') ?? new Map(), emptyV6, o.owners));
  }

  // Decide everything before touching anything.
  const payloads = new Map<Family, { payload: string; outcome: FamilyOutcome }>();
  const drifted: string[] = [];
  for (const [family, a] of assessments) {
    const f = families.find((x) => x.family === family);
    if (o.cleanupOnly) {
      payloads.set(family, a.footprint.size === 0 ? { payload: '', outcome: 'nothing to clean' } : { payload: cleanupPayload(a.footprint), outcome: 'cleaned' });
      continue;
    }
    if (f === undefined) continue;
    if (a.status === 'absent') payloads.set(family, { payload: renderRestore(f), outcome: 'applied' });
    else if (a.status === 'exact' && !o.forceApply) payloads.set(family, { payload: '', outcome: 'unchanged' });
    else if (a.status === 'drift' && !o.reconcile) drifted.push(...a.differences.map((d) => `${family} ${d}`));
    else payloads.set(family, { payload: reconcilePayload(a.footprint, f), outcome: 'reconciled' });
    if (a.status === 'drift') log.info(`${family}: drift found: ${a.differences.join('; ')}`);
  }
  if (drifted.length > 0) {
    throw new ApplyError(
      `the namespace holds rules of ours that differ from this configuration (${drifted.join('; ')}); nothing was changed. Rerun with --reconcile=true to replace them`,
      [],
      '',
    );
  }

  const touched: Touched[] = [];
  const routesAdded: RouteStep[] = [];
  const routesRemoved: RouteStep[] = [];
  const rollback = async (cause: ApplyError): Promise<never> => {
    const problems: string[] = [];
    for (const step of [...routesAdded].reverse()) {
      const r = await runner.run(routeDelArgs(step));
      if (r.exitCode !== 0) problems.push(`${routeDelArgs(step).join(' ')}: ${r.stderr.trim()}`);
    }
    for (const step of [...routesRemoved].reverse()) {
      const r = await runner.run(routeArgs(step));
      if (r.exitCode !== 0) problems.push(`${routeArgs(step).join(' ')}: ${r.stderr.trim()}`);
    }
    for (const t of [...touched].reverse()) {
      const bin = backend.restore[t.family];
      const r = await runner.run([bin, `--wait=${o.lockWaitSeconds}`], rollbackPayload(t.before, t.tables));
      if (r.exitCode !== 0) problems.push(`${bin} (rollback): ${r.stderr.trim()}`);
      else await dropEmptyNftTables(runner, backend, t.family, t.tables.filter((x) => !t.before.has(x)), log);
    }
    if (problems.length > 0) log.error(`rollback incomplete: ${problems.join('; ')}`);
    else log.info('rolled back: the namespace is as it was before this run');
    throw cause;
  };

  const outcomes: Partial<Record<Family, FamilyOutcome>> = {};
  for (const [family, { payload, outcome }] of payloads) {
    outcomes[family] = outcome;
    if (payload === '') {
      log.info(`${family}: ${outcome}`);
      continue;
    }
    const bin = backend.restore[family];
    log.debug(`${bin} --noflush input:\n${payload.trimEnd()}`);
    const tables = tablesOf(payload);
    touched.push({ family, before: before.get(family) ?? new Map(), tables });
    const r = await runner.run([bin, '--noflush', `--wait=${o.lockWaitSeconds}`], payload);
    if (r.exitCode !== 0) await rollback(commandError(`${bin} --noflush failed`, [bin, '--noflush'], r));
    log.info(`${family}: ${outcome} (${tables.join(', ')})`);
    if (o.cleanupOnly) await dropTablesIfEmpty(runner, backend, family, tables, log);
  }

  const routeState = await readRouteState(runner, plan.routes);
  for (const step of plan.routes) {
    const present = routeState.has(step);
    if (o.cleanupOnly) {
      if (!present) continue;
      const r = await runner.run(routeDelArgs(step));
      if (r.exitCode !== 0) await rollback(commandError(`${routeDelArgs(step).join(' ')} failed`, routeDelArgs(step), r));
      routesRemoved.push(step);
      log.info(`removed: ${routeDelArgs(step).join(' ')}`);
      continue;
    }
    if (present) continue;
    const argv = routeArgs(step);
    const r = await runner.run(argv);
    if (r.exitCode !== 0) await rollback(commandError(`${argv.join(' ')} failed`, argv, r));
    routesAdded.push(step);
    log.info(`added: ${argv.join(' ')}`);
  }
  return { backend, evidence: detection.evidence, families: outcomes, routesAdded, routesRemoved };
}

function commandError(what: string, argv: readonly string[], r: { exitCode: number; stderr: string; notFound: boolean }): ApplyError {
  if (r.notFound) return new ApplyError(`${argv[0] ?? 'command'} not found (install iptables / iproute2)`, argv, r.stderr);
  const detail = r.stderr.trim().split('\n').filter((l) => l.length > 0).slice(0, 3).join(' | ');
  return new ApplyError(`${what} (exit ${r.exitCode}): ${detail}`, argv, r.stderr);
}

/** After removing ours: delete those of the tables that are left holding nothing (nft backend). */
async function dropTablesIfEmpty(runner: Runner, backend: Backend, family: Family, tables: readonly string[], log: Logger): Promise<void> {
  if (backend.name !== 'nft' || tables.length === 0) return;
  const after = await runner.run([backend.save[family]]);
  if (after.exitCode !== 0) return;
  const state = parseSave(after.stdout);
  await dropEmptyNftTables(runner, backend, family, tables.filter((t) => isEmptyTable(state.get(t))), log);
}

/**
 * With the nft backend an emptied table still exists (iptables-save lists it). Delete tables that
 * hold nothing, so cleanup and rollback leave the ruleset as it was. Needs `nft`; skipped without it.
 */
async function dropEmptyNftTables(runner: Runner, backend: Backend, family: Family, tables: readonly string[], log: Logger): Promise<void> {
  if (backend.name !== 'nft' || tables.length === 0) return;
  for (const table of tables) {
    const r = await runner.run(['nft', 'delete', 'table', family === 'ipv4' ? 'ip' : 'ip6', table]);
    if (r.exitCode !== 0) log.debug(`nft delete table ${table}: ${r.notFound ? 'nft not installed' : r.stderr.trim()}`);
  }
}
