import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import { logLoaded } from '../log-blocks.js';
import type { FamilyRules, Plan, RouteStep } from '../model/rule.js';
import { renderRestore, writeRestore } from '../render/restore.js';
import { routeArgs } from '../render/ip.js';
import type { Runner, RunResult } from './commands.js';
import { quickBackend } from './detect.js';
import { TABLES_WE_WRITE } from '../build/owned.js';
import { restoreCommand } from './early.js';
import { Transaction } from './engine.js';
import { legacyTablesFact } from './facts.js';
import { removeFresh, type FamilyOutcome, type IptablesContext, type IptablesOutcome } from './iptables.js';
import { addOrder, routeFailureLine, undoRoute, type RouteFailure } from './routes.js';
import { committedBefore, failedLine, tablesOf } from './state.js';

/**
 * The fresh path, for a namespace without our rules (a pod's first start): the restore payloads
 * and the routing steps all at once, no dump first. It needs the backend known without a dump (a
 * forced one, or no legacy tables in the target) and the target's tables listed without a
 * program (the entrypoint, over netlink), so that undoing it can delete the tables it created. A
 * restore whose `-N` finds our chains already there fails; then everything this attempt did is
 * undone in one rollback, and the careful path (apply/careful.ts) takes over: resolves to
 * undefined (an ApplyError if the undo was incomplete). Elsewhere it is not taken (undefined at once).
 */
export async function applyFresh(plan: Plan, ctx: IptablesContext): Promise<IptablesOutcome | undefined> {
  const { log, kernel, runner } = ctx;
  if (kernel.tables === undefined) return undefined;
  const quick = quickBackend(ctx.forceIptablesBinary, ctx.forceIptablesBinary === undefined ? await legacyTablesFact(kernel) : undefined);
  if (quick === undefined) return undefined;
  const { backend } = quick;
  const families: FamilyRules[] = plan.ipv6 === null ? [plan.ipv4] : [plan.ipv4, plan.ipv6];
  // The tables there before: read before any restore is fed a COMMIT (the ones started early wait for their input).
  const existed = backend.name === 'nft' ? await Promise.all(families.map(async (f) => new Set(await kernel.tables?.(f.family)))) : families.map(() => undefined);
  // A table of ours this plan does not write (an empty one an earlier run left, our rules of the
  // other mode, or of a family the plan no longer has) is the careful path's to judge.
  const ours = (t: string) => (TABLES_WE_WRITE as readonly string[]).includes(t);
  const unplanned = families.flatMap((f, i) => [...(existed[i] ?? [])].filter((t) => ours(t) && !f.rules.some((r) => r.table === t)));
  // (A namespace without IPv6 cannot list its ip6 tables: the careful path reads what there is.)
  const otherFamily = plan.ipv6 === null && backend.name === 'nft' ? await kernel.tables('ipv6').catch(() => undefined) : [];
  if (unplanned.length > 0 || otherFamily === undefined || otherFamily.some(ours)) return undefined;
  // Said before anything is loaded, as the careful path says it (a fallback to it says its own).
  log.info(`iptables backend: ${backend.name} (${quick.evidence})`);
  const tx = new Transaction(ctx.deadline);
  const restores = families.map(async (f, i) => {
    const bin = backend.restore[f.family];
    const { payload, r } = await restoreFamily(runner, restoreCommand(bin, ctx.lockWaitSeconds), f, log);
    if (r.startedEarly === true) log.debug(`${bin} had been started before the program loaded; fed its payload`);
    // A restore that never ran committed nothing; one that failed committed the tables before its
    // failing line. One that died or was killed without naming a line may have committed any of its tables.
    const line = failedLine(r.stderr);
    const committed = r.exitCode === 0 ? tablesOf(payload) : r.notFound ? [] : committedBefore(payload, line);
    return { family: f, bin, r, committed, certain: r.exitCode === 0 || line !== undefined, existed: existed[i] };
  });
  // Each family's steps in order, the fwmark rule last (routes.ts addOrder), stopping at a failure:
  // in a namespace that holds the routing already this attempt adds no rule, and one killed part-way
  // leaves nothing extra.
  const routing = (['ipv4', 'ipv6'] as const).map(async (family) => {
    const done: { step: RouteStep; failure: RouteFailure | null }[] = [];
    for (const step of addOrder(plan.routes.filter((s) => s.family === family))) {
      const failure = await kernel.routes.change(step, 'add');
      done.push({ step, failure });
      if (failure !== null) break;
      tx.did(undoRoute(kernel.routes, step, 'add'));
    }
    return done;
  });
  const [rs, bs] = await Promise.all([Promise.all(restores), Promise.all(routing).then((xs) => xs.flat())]);
  // The restores' undos, recorded so that those certain of what they undo run first (newest
  // first): one that may not have committed anything (a restore killed part-way) must not spend
  // the undo's time, under a run's deadline, before them.
  for (const x of [...rs].sort((a, b) => Number(a.certain) - Number(b.certain))) {
    if (x.committed.length > 0) tx.did(removeFresh(ctx, backend, x.family, x.committed, x.certain, x.existed));
  }
  if (rs.every((x) => x.r.exitCode === 0) && bs.every((x) => x.failure === null)) {
    const outcomes: Partial<Record<'ipv4' | 'ipv6', FamilyOutcome>> = {};
    for (const x of rs) {
      outcomes[x.family.family] = 'applied';
      log.info(`${x.family.family}: applied (${x.committed.join(', ')})`);
    }
    for (const x of bs) log.info(`added: ${routeArgs(x.step).join(' ')}`);
    return { backend, evidence: quick.evidence, families: outcomes, routesAdded: bs.map((x) => x.step), routesRemoved: [] };
  }
  const why = [
    ...rs.flatMap((x) => (x.r.exitCode === 0 ? [] : [`${x.bin}: ${firstLine(x.r.stderr)}`])),
    ...bs.flatMap((x) => (x.failure === null ? [] : [routeFailureLine(x.step, 'add', x.failure)])),
  ];
  log.debug(`first attempt did not apply cleanly (${why.join('; ')}); undoing it and reading the namespace state`);
  const problems = await tx.rollback();
  // Not undone: the careful path would take what is left for the namespace's own state, and its
  // rollback would call that "as it was". Stop here and say what is left.
  if (problems.length > 0) throw new ApplyError(`the first attempt failed (${why.join('; ')}), and undoing it was incomplete: ${problems.join('; ')}`, [], '');
  if (ctx.deadline?.passed() === true) {
    // Past the run's deadline no second attempt starts: the first one's changes were undone.
    log.info('rolled back: the namespace is as it was before this run');
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
