import type { Logger } from '../log.js';
import type { RouteStep } from '../model/rule.js';
import { routeArgs, routeDelArgs } from '../render/ip.js';
import type { RunResult } from './runner.js';

export { routeDelArgs };

/** Which of the plan's routing steps are already in place. */
export interface RouteState {
  has(step: RouteStep): boolean;
}

/**
 * How routing steps reach the kernel: `ip` under Node (apply/ip-routes.ts), rtnetlink in the
 * entrypoint (platform/quickjs/netlink.ts). Both give a step's result as `ip` gives it (exit
 * status, stderr), so a failure reads the same whichever did the work.
 */
export interface RouteBackend {
  /** Read the rules, routes and addresses the steps are about. */
  read(steps: readonly RouteStep[]): Promise<RouteState>;
  /** Add or delete one step. */
  change(step: RouteStep, op: 'add' | 'del'): Promise<RunResult>;
  /**
   * Add the steps (the fast path), each family's in plan order: the steps done, then the failing
   * one with its result; none after it in its family.
   */
  addAll(steps: readonly RouteStep[]): Promise<{ step: RouteStep; r: RunResult }[]>;
}

/** The `ip` command line a step's change stands for (logs and errors name it). */
export function changeArgs(step: RouteStep, op: 'add' | 'del'): string[] {
  return op === 'add' ? routeArgs(step) : routeDelArgs(step);
}

/** The routing steps a run changed, in the order it changed them. */
export interface RouteChanges {
  readonly added: RouteStep[];
  readonly removed: RouteStep[];
}

/**
 * Add the steps not in place (cleanup: remove those in place), in plan order, recording and
 * logging each. A failed change goes to `fail`, which throws.
 */
export async function changeRoutes(
  backend: RouteBackend,
  log: Logger,
  steps: readonly RouteStep[],
  state: RouteState,
  cleanupOnly: boolean,
  changes: RouteChanges,
  fail: (argv: string[], r: RunResult) => Promise<never>,
): Promise<void> {
  for (const step of steps) {
    if (state.has(step) !== cleanupOnly) continue;
    const op = cleanupOnly ? 'del' : 'add';
    const r = await backend.change(step, op);
    if (r.exitCode !== 0) await fail(changeArgs(step, op), r);
    (cleanupOnly ? changes.removed : changes.added).push(step);
    log.info(`${cleanupOnly ? 'removed' : 'added'}: ${changeArgs(step, op).join(' ')}`);
  }
}

/** Undo recorded changes, newest first (added ones, then removed ones); what failed, as `argv: stderr`. */
export async function undoRoutes(backend: RouteBackend, changes: RouteChanges): Promise<string[]> {
  const problems: string[] = [];
  const undo = async (step: RouteStep, op: 'add' | 'del'): Promise<void> => {
    const r = await backend.change(step, op);
    if (r.exitCode !== 0) problems.push(`${changeArgs(step, op).join(' ')}: ${r.stderr.trim()}`);
  };
  for (const step of [...changes.added].reverse()) await undo(step, 'del');
  for (const step of [...changes.removed].reverse()) await undo(step, 'add');
  return problems;
}
