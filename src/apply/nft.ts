import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import { logLoaded } from '../log-blocks.js';
import type { Plan, RouteStep } from '../model/rule.js';
import { NFT_TABLES, renderNft } from '../render/nft/index.js';
import { ownedBy } from '../build/owned.js';
import type { Kernel } from '../platform/platform.js';
import { commandError, type RunDeadline, type Runner } from './commands.js';
import { Transaction } from './engine.js';
import type { FamilyOutcome } from './iptables.js';
import { changeRoutes, routeChanges } from './routes.js';

/**
 * Native nftables mode: the plan's nft script (Istio's layout) loaded with `nft -f -`. The script
 * adds and flushes our three inet tables before filling them, so one load is one atomic
 * transaction that also replaces whatever an earlier run left. Drift is judged on nft's own
 * listing of our tables before and after; the load and each routing change are steps of one
 * transaction (apply/engine.ts), undone together if any fails.
 */
export interface NftApplyOptions {
  readonly runner: Runner;
  readonly kernel: Kernel;
  readonly log: Logger;
  readonly reconcile: boolean;
  readonly cleanupOnly: boolean;
  /** `--nft-sets`: load the script with long lists written as anonymous sets. */
  readonly nftSets?: boolean;
  /** The run's deadline (--run-timeout): the rollback runs in its undo window. */
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
  const argv = ['nft', 'list', 'ruleset'];
  const r = await runner.run(argv);
  if (r.notFound) throw new ApplyError('nft not found (install nftables, or drop --native-nftables)', ['nft'], r.stderr);
  if (r.exitCode !== 0) throw commandError('nft list ruleset failed', argv, r);
  return ourTables(r.stdout);
}

/** Load a script; fails with an ApplyError naming what it was for. */
async function load(runner: Runner, log: Logger, script: string, what: string): Promise<void> {
  const argv = ['nft', '-f', '-'];
  logLoaded(log, argv, script, what === 'apply' ? {} : { what });
  const r = await runner.run(argv, script);
  if (r.exitCode !== 0) throw commandError(`nft -f - (${what}) failed`, argv, r);
}

/** Apply (or clean up) the plan's nftables tables and routing in the namespace, all or nothing. */
export async function applyNft(plan: Plan, o: NftApplyOptions): Promise<NftReport> {
  const { runner, log, kernel } = o;
  const before = await listOurs(runner);
  const owned = ownedBy(plan);
  const routes = kernel.routes;
  const state = await routes.read([...plan.routes, ...owned.routes]);
  const changes = o.cleanupOnly ? routeChanges([], [...plan.routes, ...owned.routes], state) : routeChanges(plan.routes, owned.routes, state);

  let outcome: FamilyOutcome = 'nothing to clean';
  const { added, removed } = await Transaction.run(log, async (tx) => {
    if (!o.cleanupOnly || before.size > 0) {
      // From the first load on, our tables are put back as they were if anything fails (a load or
      // listing that fails or is killed part-way, a route): one transaction.
      tx.did({
        what: `nft tables ${OUR_TABLES.join(', ')}`,
        run: () =>
          load(runner, log, restoreScript(before), 'rollback').then(
            () => undefined,
            (e: unknown) => (e instanceof Error ? e.message : String(e)),
          ),
      });
      if (o.cleanupOnly) {
        await load(runner, log, restoreScript(new Map()), 'cleanup');
        outcome = 'cleaned';
      } else {
        await load(runner, log, renderNft(plan, { sets: o.nftSets === true }), 'apply');
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
    }
    log.info(`nftables: ${outcome}`);
    return changeRoutes(routes, changes, tx, log);
  }, o.deadline);
  return { outcome, routesAdded: added, routesRemoved: removed };
}
