import type { Logger } from '../log.js';
import { logLoaded } from '../log-blocks.js';
import type { Family, FamilyRules, RouteStep } from '../model/rule.js';
import type { IptablesBackend } from '../config/values.js';
import type { Kernel } from '../platform/platform.js';
import { commandError, describeCommandFailure, type RunDeadline, type Runner } from './commands.js';
import type { Backend } from './detect.js';
import { restoreCommand } from './early.js';
import type { Undo } from './engine.js';
import type { OwnerResolver } from './saveform.js';
import { isEmptyTable, parseSave, removalPayload, rollbackPayload, type SavedState, type SavedTable } from './state.js';

/*
 * What the two ways of applying iptables rules share (the fresh path, apply/fresh.ts, and the
 * careful path, apply/careful.ts): their settings and report, and the steps' undos.
 */

/** How an iptables run is made: where, and the run's settings (the option table's names). */
export interface IptablesContext {
  readonly runner: Runner;
  readonly kernel: Kernel;
  readonly log: Logger;
  readonly owners: OwnerResolver;
  readonly forceIptablesBinary?: IptablesBackend | undefined;
  /** Heal drift by removing ours and applying again. */
  readonly reconcile: boolean;
  /** Apply even when the namespace already matches. */
  readonly forceApply: boolean;
  /** Remove everything of ours and apply nothing. */
  readonly cleanupOnly: boolean;
  /** Seconds to wait for the xtables lock (legacy backend). */
  readonly lockWaitSeconds: number;
  /** The run's deadline (--run-timeout): the rollback runs in its undo window, and past it no second attempt starts. */
  readonly deadline?: RunDeadline | undefined;
}

/** What happened to one address family's rules (or, with nftables, to our tables). */
export type FamilyOutcome = 'applied' | 'unchanged' | 'reconciled' | 'cleaned' | 'nothing to clean';

export interface IptablesOutcome {
  readonly backend: Backend;
  readonly evidence: string;
  readonly families: Partial<Record<Family, FamilyOutcome>>;
  readonly routesAdded: readonly RouteStep[];
  readonly routesRemoved: readonly RouteStep[];
}

/** A family's tables as iptables-save shows them now. */
export async function readTables(runner: Runner, backend: Backend, family: Family): Promise<SavedState> {
  const argv = [backend.save[family]];
  const r = await runner.run(argv);
  if (r.exitCode !== 0) throw commandError(`${argv[0]} failed`, argv, r);
  return parseSave(r.stdout);
}

/** Two dumps of a table hold the same state (counters aside); a table present in one only differs (nft: an empty table left behind). */
export function sameTable(a: SavedTable | undefined, b: SavedTable | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const state = (t: SavedTable) => t.text.replace(/\[\d+:\d+\]/g, '[0:0]');
  return state(a) === state(b);
}

/**
 * Delete tables (nft backend: an iptables-nft table stays, empty, once its rules are gone; a fresh
 * namespace has none). What could not be deleted, as lines.
 */
export async function dropTables(runner: Runner, family: Family, tables: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const table of tables) {
    const argv = ['nft', 'delete', 'table', family === 'ipv4' ? 'ip' : 'ip6', table];
    const r = await runner.run(argv);
    if (r.exitCode !== 0) problems.push(`${argv.join(' ')}: ${describeCommandFailure(argv, r)}`);
  }
  return problems;
}

/**
 * The undo of a careful restore: put back the family's tables from the dump taken before, those
 * that differ now (a restore that failed committed nothing of its failing table, and a table this
 * run did not change is not rewritten); delete the tables the run created; then read them once
 * more: "as it was" only when it is (a legacy table, which cannot be deleted, may stay empty).
 */
export function putBack(ctx: IptablesContext, backend: Backend, family: Family, before: SavedState, touched: readonly string[]): Undo {
  const { runner } = ctx;
  return {
    what: `${family} tables ${touched.join(', ')}`,
    async run() {
      const now = await readTables(runner, backend, family);
      const differing = touched.filter((t) => !sameTable(now.get(t), before.get(t)));
      if (differing.length > 0) {
        const bin = backend.restore[family];
        const argv = [bin, `--wait=${ctx.lockWaitSeconds}`];
        const payload = rollbackPayload(before, differing);
        logLoaded(ctx.log, argv, payload, { family, what: 'rollback' });
        const r = await runner.run(argv, payload);
        if (r.exitCode !== 0) return `${bin} ${describeCommandFailure([bin], r)}`;
      }
      const created = differing.filter((t) => !before.has(t));
      const dropped = backend.name === 'nft' ? await dropTables(runner, family, created) : [];
      if (dropped.length > 0) return dropped.join('; ');
      const after = await readTables(runner, backend, family);
      const left = touched.filter((t) => !sameTable(after.get(t), before.get(t)) && !(backend.name !== 'nft' && !before.has(t) && isEmptyTable(after.get(t))));
      return left.length === 0 ? undefined : `${left.join(', ')} still differ from before`;
    },
  };
}

/**
 * The undo of a fresh restore (no dump was taken: the namespace held none of ours): remove exactly
 * what the plan adds to the tables it committed, then delete those of them that did not exist
 * before (`existed`, nft backend) and are empty. A restore that died without naming a failing
 * line may have committed any of its tables: each is then undone on its own, and one it never
 * committed refuses the undo harmlessly.
 */
export function removeFresh(ctx: IptablesContext, backend: Backend, rules: FamilyRules, committed: readonly string[], certain: boolean, existed: ReadonlySet<string> | undefined): Undo {
  const { runner } = ctx;
  const bin = backend.restore[rules.family];
  return {
    what: `${rules.family} tables ${committed.join(', ')}`,
    async run() {
      const problems: string[] = [];
      const undone: string[] = [];
      for (const tables of certain ? [committed] : committed.map((t) => [t])) {
        const r = await runner.run(restoreCommand(bin, ctx.lockWaitSeconds), removalPayload(rules, new Set(tables)));
        if (r.exitCode === 0) undone.push(...tables);
        else if (certain) problems.push(`${bin} ${describeCommandFailure([bin], r)}`);
      }
      if (problems.length > 0) return problems.join('; ');
      // Only a table whose undo went through can have been committed: one that refused it was not.
      const created = undone.filter((t) => existed !== undefined && !existed.has(t));
      if (backend.name !== 'nft' || created.length === 0) return undefined;
      const now = await readTables(runner, backend, rules.family);
      const dropped = await dropTables(runner, rules.family, created.filter((t) => now.has(t) && isEmptyTable(now.get(t))));
      return dropped.length === 0 ? undefined : dropped.join('; ');
    },
  };
}
