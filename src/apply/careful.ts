import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import { logLoaded } from '../log-blocks.js';
import type { Family, FamilyRules, Plan } from '../model/rule.js';
import { renderRestore } from '../render/restore.js';
import type { ApplyOptions, ApplyReport, FamilyOutcome } from './apply.js';
import { undoing } from './commands.js';
import { detectBackend, type Backend } from './detect.js';
import { restoreCommand } from './early.js';
import { ipRoutes } from './ip-routes.js';
import { changeRoutes, undoRoutes, type RouteChanges } from './routes.js';
import type { Runner } from './runner.js';
import { assess, cleanupPayload, isEmptyTable, parseSave, reconcilePayload, rollbackPayload, tablesOf, type Assessment, type SavedState, type SavedTable } from './state.js';

/*
 * The careful path of applying: the namespace's state is read first, then only what is needed is
 * changed (reruns, drift, reconcile, cleanup), with a rollback to the state read if anything
 * fails. Loaded only when it runs: a pod's first start takes the fast path in apply.ts.
 */

interface Touched {
  readonly family: Family;
  readonly before: SavedState;
  readonly tables: string[];
}

/** Apply with the namespace's state read first: reruns, drift, reconcile, cleanup, rollback. */
export async function applyWithState(plan: Plan, o: ApplyOptions): Promise<ApplyReport> {
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

  // The routing read before anything is touched: a failure to read it stops the run here.
  const routing = o.routes ?? ipRoutes(runner);
  const routeState = await routing.read(plan.routes);

  const touched: Touched[] = [];
  const routes: RouteChanges = { added: [], removed: [] };
  const rollback = (cause: ApplyError): Promise<never> => undoing(o.deadline, () => putBack(cause));
  const putBack = async (cause: ApplyError): Promise<never> => {
    const problems = await undoRoutes(routing, routes);
    for (const t of [...touched].reverse()) {
      const bin = backend.restore[t.family];
      // Only the tables that differ now from the state read before are put back: a restore that
      // failed committed nothing of its failing table (or of any, when it died before reading),
      // and a table this run did not change is not rewritten.
      const now = await runner.run([backend.save[t.family]]);
      if (now.exitCode !== 0) {
        problems.push(`${backend.save[t.family]} (before rollback): ${now.stderr.trim() || `exit ${now.exitCode}`}`);
        continue;
      }
      const current = parseSave(now.stdout);
      const changed = t.tables.filter((x) => !sameTable(current.get(x), t.before.get(x)));
      if (changed.length === 0) continue;
      const argv = [bin, `--wait=${o.lockWaitSeconds}`];
      const payload = rollbackPayload(t.before, changed);
      logLoaded(log, argv, payload, { family: t.family, what: 'rollback' });
      const r = await runner.run(argv, payload);
      if (r.exitCode !== 0) problems.push(`${bin} (rollback): ${r.stderr.trim()}`);
      else await dropEmptyNftTables(runner, backend, t.family, changed.filter((x) => !t.before.has(x)), log);
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
    const argv = restoreCommand(bin, o.lockWaitSeconds);
    logLoaded(log, argv, payload, { family });
    const tables = tablesOf(payload);
    touched.push({ family, before: before.get(family) ?? new Map(), tables });
    const r = await runner.run(argv, payload);
    if (r.exitCode !== 0) await rollback(commandError(`${bin} --noflush failed`, [bin, '--noflush'], r));
    log.info(`${family}: ${outcome} (${tables.join(', ')})`);
    if (o.cleanupOnly) await dropTablesIfEmpty(runner, backend, family, tables, log);
  }

  await changeRoutes(routing, log, plan.routes, routeState, o.cleanupOnly, routes, (argv, r) => rollback(commandError(`${argv.join(' ')} failed`, argv, r)));
  return { backend, evidence: detection.evidence, families: outcomes, routesAdded: routes.added, routesRemoved: routes.removed };
}

/** Two dumps of a table hold the same state (counters aside); a table present in one only differs (nft: an empty table left behind). */
function sameTable(a: SavedTable | undefined, b: SavedTable | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const state = (t: SavedTable) => t.text.replace(/\[\d+:\d+\]/g, '[0:0]');
  return state(a) === state(b);
}

function commandError(what: string, argv: readonly string[], r: { exitCode: number; stderr: string; notFound: boolean }): ApplyError {
  if (r.notFound) return new ApplyError(`${argv[0] ?? 'command'} not found (install iptables / iproute2)`, argv, r.stderr);
  const detail = r.stderr.trim().split('\n').filter((l) => l.length > 0).slice(0, 3).join(' | ');
  return new ApplyError(`${what} (exit ${r.exitCode}): ${detail}`, argv, r.stderr);
}

/** After removing ours: delete those of the tables that are left holding nothing (nft backend). */
export async function dropTablesIfEmpty(runner: Runner, backend: Backend, family: Family, tables: readonly string[], log: Logger): Promise<void> {
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
