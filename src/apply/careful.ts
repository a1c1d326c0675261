import { ApplyError } from '../errors.js';
import { logLoaded } from '../log-blocks.js';
import type { Family, FamilyRules, Plan } from '../model/rule.js';
import { renderRestore } from '../render/restore.js';
import { ownedBy, TABLES_WE_WRITE } from '../build/owned.js';
import { commandError } from './commands.js';
import { detectBackend } from './detect.js';
import { restoreCommand } from './early.js';
import { Transaction } from './engine.js';
import { dropTables, putBack, readTables, type FamilyOutcome, type IptablesContext, type IptablesOutcome } from './iptables.js';
import { changeArgs, changeRoutes, routeChanges } from './routes.js';
import { assess, cleanupPayload, isEmptyTable, parseSave, reconcilePayload, tablesOf, type Assessment, type SavedState } from './state.js';

/*
 * The careful path of applying: the namespace's state is read first, then only what is needed is
 * changed (reruns, drift, reconcile, a mode switch, cleanup), in one transaction (apply/engine.ts)
 * that puts back everything it changed if any step fails. Loaded only when it runs: a pod's first
 * start takes the fresh path (apply/fresh.ts) where the platform allows it.
 */

const NO_RULES = (family: Family): FamilyRules => ({ family, rules: [], chains: new Map() });

/** Apply with the namespace's state read first: reruns, drift, reconcile, cleanup, rollback. */
export async function applyCareful(plan: Plan, ctx: IptablesContext): Promise<IptablesOutcome> {
  const { runner, log, kernel } = ctx;
  const detection = await detectBackend(runner, ctx.forceIptablesBinary);
  const backend = detection.backend;
  log.info(`iptables backend: ${backend.name} (${detection.evidence})`);

  // Both families are read: the plan's, and what an earlier run left in a family the plan no longer has.
  const before = new Map<Family, SavedState>([['ipv4', detection.ipv4State]]);
  const v6 = await runner.run([backend.save.ipv6]);
  if (v6.exitCode === 0) before.set('ipv6', parseSave(v6.stdout));
  else if (plan.ipv6 !== null) throw commandError(`${backend.save.ipv6} failed`, [backend.save.ipv6], v6);
  else log.debug(`${backend.save.ipv6} unavailable (${v6.stderr.trim() || `exit ${v6.exitCode}`}); IPv6 is off, skipping it`);

  const owned = ownedBy(plan);
  const assessments = new Map<Family, { rules: FamilyRules; planned: boolean; a: Assessment }>();
  for (const [family, state] of before) {
    const rules = family === 'ipv4' ? plan.ipv4 : plan.ipv6;
    assessments.set(family, { rules: rules ?? NO_RULES(family), planned: rules !== null, a: assess(state, rules ?? NO_RULES(family), ctx.owners, owned.builtin[family]) });
  }

  // Decide everything before touching anything.
  const payloads = new Map<Family, { payload: string; outcome: FamilyOutcome }>();
  const drifted: string[] = [];
  for (const [family, { rules, planned, a }] of assessments) {
    if (ctx.cleanupOnly || !planned) {
      // Cleanup, or a family the plan does not have: whatever of ours is there goes.
      if (a.footprint.size === 0) {
        if (planned || ctx.cleanupOnly) payloads.set(family, { payload: '', outcome: 'nothing to clean' });
      } else if (!ctx.cleanupOnly && !ctx.reconcile) drifted.push(`${family}: rules of ours in a family the plan does not have`);
      else payloads.set(family, { payload: cleanupPayload(a.footprint), outcome: 'cleaned' });
      continue;
    }
    if (a.status === 'absent') payloads.set(family, { payload: renderRestore(rules), outcome: 'applied' });
    else if (a.status === 'exact' && !ctx.forceApply) payloads.set(family, { payload: '', outcome: 'unchanged' });
    else if (a.status === 'drift' && !ctx.reconcile) drifted.push(...a.differences.map((d) => `${family} ${d}`));
    else payloads.set(family, { payload: reconcilePayload(a.footprint, rules), outcome: 'reconciled' });
    if (a.status === 'drift') log.info(`${family}: drift found: ${a.differences.join('; ')}`);
  }

  // The routing read before anything is touched: a failure to read it stops the run here.
  const routes = kernel.routes;
  const state = await routes.read([...plan.routes, ...owned.routes]);
  const changes = ctx.cleanupOnly ? routeChanges([], [...plan.routes, ...owned.routes], state) : routeChanges(plan.routes, owned.routes, state);
  const stale = changes.filter((c) => c.op === 'del');
  if (!ctx.cleanupOnly && !ctx.reconcile) drifted.push(...stale.map((c) => `routing: ${changeArgs(c.step, 'add').join(' ')} is not in this configuration`));
  if (drifted.length > 0) {
    throw new ApplyError(
      `the namespace holds rules of ours that differ from this configuration (${drifted.join('; ')}); nothing was changed. Rerun with --reconcile=true to replace them`,
      [],
      '',
    );
  }

  const outcomes: Partial<Record<Family, FamilyOutcome>> = {};
  const { added, removed } = await Transaction.run(log, async (tx) => {
    for (const [family, { rules, planned }] of assessments) {
      const { payload, outcome } = payloads.get(family) ?? { payload: '', outcome: undefined };
      if (outcome !== undefined) outcomes[family] = outcome;
      const was = before.get(family) ?? new Map();
      let now = was;
      if (payload !== '') {
        const bin = backend.restore[family];
        logLoaded(log, restoreCommand(bin, ctx.lockWaitSeconds), payload, { family });
        const tables = tablesOf(payload);
        tx.did(putBack(ctx, backend, family, was, tables));
        const r = await runner.run(restoreCommand(bin, ctx.lockWaitSeconds), payload);
        if (r.exitCode !== 0) throw commandError(`${bin} --noflush failed`, [bin, '--noflush'], r);
        log.info(`${family}: ${outcome} (${tables.join(', ')})`);
        now = backend.name === 'nft' ? await readTables(runner, backend, family) : now;
      } else if (outcome !== undefined) log.info(`${family}: ${outcome}`);
      // A table of ours the plan does not write, left holding nothing (emptied by this run, or by
      // an earlier one killed before it deleted it) is deleted, as a fresh run of this plan leaves
      // none (nft backend: a legacy table cannot be deleted).
      if (backend.name !== 'nft' || (!ctx.cleanupOnly && !ctx.reconcile)) continue;
      const writes = new Set(ctx.cleanupOnly || !planned ? [] : rules.rules.map((r) => r.table));
      const empty = [...now.keys()].filter((t) => (TABLES_WE_WRITE as readonly string[]).includes(t) && !writes.has(t) && isEmptyTable(now.get(t)));
      if (empty.length === 0) continue;
      if (payload === '') tx.did(putBack(ctx, backend, family, was, empty));
      const problems = await dropTables(runner, family, empty);
      if (problems.length > 0) log.warn(`left empty: ${problems.join('; ')}`);
      else log.info(`${family}: deleted the empty table${empty.length === 1 ? '' : 's'} ${empty.join(', ')}`);
    }
    return changeRoutes(routes, changes, tx, log);
  }, ctx.deadline);
  return { backend, evidence: detection.evidence, families: outcomes, routesAdded: added, routesRemoved: removed };
}
