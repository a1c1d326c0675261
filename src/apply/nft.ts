import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import { logLoaded } from '../log-blocks.js';
import type { Plan, RouteStep } from '../model/rule.js';
import { NFT_TABLES, renderNft } from '../render/nft/index.js';
import type { FamilyOutcome } from './apply.js';
import { ipRoutes } from './ip-routes.js';
import { changeRoutes, undoRoutes, type RouteBackend, type RouteChanges } from './routes.js';
import type { Runner } from './runner.js';
import { undoing, withNamespaceLock, type RunDeadline } from './commands.js';
import { LOCK_WAIT_SECONDS } from './early.js';

/**
 * Native nftables mode: the plan's nft script (Istio's layout) loaded with `nft -f -`. The script
 * adds and flushes our three inet tables before filling them, so one load is one atomic
 * transaction that also replaces whatever an earlier run left. Drift is judged on nft's own
 * listing of our tables before and after; putting back is one transaction too.
 */
export interface NftApplyOptions {
  readonly runner: Runner;
  readonly log: Logger;
  readonly reconcile: boolean;
  readonly cleanupOnly: boolean;
  /** `--nft-sets`: load the script with long lists written as anonymous sets. */
  readonly sets?: boolean;
  /** How routing steps reach the kernel; defaults to `ip` through the runner. */
  readonly routes?: RouteBackend | undefined;
  /** Seconds to wait for another run's namespace lock (default: the xtables lock's bound). */
  readonly lockWaitSeconds?: number;
  /** The run's deadline, shared with the runner: the rollback runs under deadline.undoing. */
  readonly deadline?: RunDeadline | undefined;
}

export interface NftReport {
  readonly outcome: FamilyOutcome;
  readonly routesAdded: readonly RouteStep[];
  readonly routesRemoved: readonly RouteStep[];
}

const OUR_TABLES = Object.values(NFT_TABLES);

/** Our tables in `nft list ruleset` output, each block verbatim, by name. */
function ourTables(ruleset: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = ruleset.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^table inet (\S+) \{$/.exec(lines[i] ?? '');
    if (!m || !OUR_TABLES.includes(m[1] ?? '')) continue;
    const start = i;
    while (i < lines.length && lines[i] !== '}') i++;
    out.set(m[1] ?? '', `${lines.slice(start, i + 1).join('\n')}\n`);
  }
  return out;
}

/** A listing with counter values zeroed, for comparing states. */
export function withoutCounters(text: string): string {
  return text.replace(/counter packets \d+ bytes \d+/g, 'counter packets 0 bytes 0');
}

/**
 * An nft script putting our tables back exactly as listed in `before`: each of our tables is
 * added (a no-op when present) and deleted, so the script needs no knowledge of what is there
 * now, then the tables of `before` are loaded. One transaction.
 */
function restoreScript(before: ReadonlyMap<string, string>): string {
  const lines: string[] = [];
  for (const t of OUR_TABLES) lines.push(`add table inet ${t}`, `delete table inet ${t}`);
  for (const block of before.values()) lines.push(block.trimEnd());
  return `${lines.join('\n')}\n`;
}

async function listOurs(runner: Runner): Promise<Map<string, string>> {
  const r = await runner.run(['nft', 'list', 'ruleset']);
  if (r.notFound) throw new ApplyError('nft not found (install nftables, or drop --native-nftables)', ['nft'], r.stderr);
  if (r.exitCode !== 0) throw new ApplyError(`nft list ruleset failed (exit ${r.exitCode}): ${r.stderr.trim()}`, ['nft', 'list', 'ruleset'], r.stderr);
  return ourTables(r.stdout);
}

export async function applyNft(plan: Plan, o: NftApplyOptions): Promise<NftReport> {
  const fail = (message: string) => new ApplyError(message, [], '');
  return withNamespaceLock(o.runner, o.lockWaitSeconds ?? LOCK_WAIT_SECONDS, () => applyNftLocked(plan, o), fail, o.log);
}

async function applyNftLocked(plan: Plan, o: NftApplyOptions): Promise<NftReport> {
  const { runner, log } = o;
  const before = await listOurs(runner);
  const load = async (script: string, what: string): Promise<void> => {
    logLoaded(log, ['nft', '-f', '-'], script, what === 'apply' ? {} : { what });
    const r = await runner.run(['nft', '-f', '-'], script);
    if (r.exitCode !== 0) {
      const detail = r.stderr.trim().split('\n').slice(0, 3).join(' | ');
      throw new ApplyError(`nft -f - (${what}) failed (exit ${r.exitCode}): ${detail}`, ['nft', '-f', '-'], r.stderr);
    }
  };
  const routes: RouteChanges = { added: [], removed: [] };
  const routing = o.routes ?? ipRoutes(runner);
  const routeState = await routing.read(plan.routes);

  // From the first load on, any failure (a load or listing that fails or is killed part-way, a
  // route) puts our tables back as they were and removes the routes added: one transaction.
  let loaded = false;
  let outcome: NftReport['outcome'];
  try {
    if (o.cleanupOnly) {
      if (before.size === 0) outcome = 'nothing to clean';
      else {
        loaded = true;
        await load(restoreScript(new Map()), 'cleanup');
        outcome = 'cleaned';
      }
    } else {
      loaded = true;
      await load(renderNft(plan, { sets: o.sets === true }), 'apply');
      const after = await listOurs(runner);
      const same = (a: Map<string, string>, b: Map<string, string>): boolean =>
        a.size === b.size && [...a].every(([t, text]) => withoutCounters(text) === withoutCounters(b.get(t) ?? ''));
      if (before.size === 0) outcome = 'applied';
      else if (same(before, after)) outcome = 'unchanged';
      else if (!o.reconcile) {
        throw new ApplyError(
          `the namespace holds nft tables of ours that differ from this configuration (${[...before.keys()].join(', ')}); they were left as they were. Rerun with --reconcile=true to replace them`,
          [],
          '',
        );
      } else outcome = 'reconciled';
    }
    log.info(`nftables: ${outcome}`);
    await changeRoutes(routing, log, plan.routes, routeState, o.cleanupOnly, routes, async (argv, r) => {
      throw new ApplyError(`${argv.join(' ')} failed (exit ${r.exitCode}): ${r.stderr.trim()}`, argv, r.stderr);
    });
  } catch (err) {
    const problems = await undoing(o.deadline, async () => {
      const left = await undoRoutes(routing, routes);
      if (loaded) {
        try {
          await load(restoreScript(before), 'rollback');
        } catch (e) {
          left.push(e instanceof Error ? e.message : String(e));
        }
      }
      return left;
    });
    if (problems.length > 0) log.error(`rollback incomplete: ${problems.join('; ')}`);
    else if (loaded || routes.added.length + routes.removed.length > 0) log.info('rolled back: the namespace is as it was before this run');
    throw err;
  }
  return { outcome, routesAdded: routes.added, routesRemoved: routes.removed };
}
