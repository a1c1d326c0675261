import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Family, RouteStep } from '../model/rule.js';
import { routeArgs, routeDelArgs } from '../render/ip.js';
import type { Runner, RunResult } from './runner.js';

export { routeDelArgs };

/** Which of the plan's routing steps are already in place, read with `ip -j`. */
export interface RouteState {
  has(step: RouteStep): boolean;
}

interface IpRule {
  fwmark?: string;
  table?: string;
}
interface IpRoute {
  type?: string;
  dst?: string;
  dev?: string;
}
interface IpAddr {
  addr_info?: { local?: string; prefixlen?: number }[];
}

/** A listing that fails is an error: read as "nothing there" it would add duplicates or skip removals. */
async function json<T>(runner: Runner, argv: string[]): Promise<T[]> {
  const r = await runner.run(argv);
  // A routing table nothing was ever added to does not exist yet: it holds nothing.
  if (r.exitCode !== 0 && /FIB table does not exist/.test(r.stderr)) return [];
  if (r.exitCode !== 0) throw new ApplyError(`${argv.join(' ')} failed (exit ${r.exitCode}): ${r.stderr.trim()}`, argv, r.stderr);
  if (r.stdout.trim() === '') return [];
  try {
    return JSON.parse(r.stdout) as T[];
  } catch {
    throw new ApplyError(`${argv.join(' ')} printed something other than JSON`, argv, r.stderr);
  }
}

const fam = (f: Family): string => (f === 'ipv4' ? '-4' : '-6');

/** Read the current rules, routes and lo addresses the steps are about (one `ip` call per fact). */
export async function readRouteState(runner: Runner, steps: readonly RouteStep[]): Promise<RouteState> {
  const rules = new Map<Family, IpRule[]>();
  const routes = new Map<string, IpRoute[]>();
  let loAddrs: IpAddr[] | undefined;
  for (const s of steps) {
    if (s.kind === 'fwmarkRule' && !rules.has(s.family)) rules.set(s.family, await json<IpRule>(runner, ['ip', '-j', fam(s.family), 'rule', 'show']));
    if (s.kind === 'localRoute' && !routes.has(`${s.family}/${s.table}`)) {
      routes.set(`${s.family}/${s.table}`, await json<IpRoute>(runner, ['ip', '-j', fam(s.family), 'route', 'show', 'table', String(s.table)]));
    }
    if (s.kind === 'loopbackAddress' && loAddrs === undefined) loAddrs = await json<IpAddr>(runner, ['ip', '-j', '-6', 'addr', 'show', 'dev', 'lo']);
  }
  return {
    has(step) {
      switch (step.kind) {
        case 'fwmarkRule':
          return (rules.get(step.family) ?? []).some((r) => r.fwmark !== undefined && Number(r.fwmark) === step.mark && r.table === String(step.table));
        case 'localRoute':
          return (routes.get(`${step.family}/${step.table}`) ?? []).some((r) => r.type === 'local' && r.dst === 'default' && r.dev === 'lo');
        case 'loopbackAddress':
          return (loAddrs ?? []).some((a) => (a.addr_info ?? []).some((i) => i.local === step.cidr.address && i.prefixlen === step.cidr.prefixLength));
      }
    },
  };
}

/** The routing steps a run changed, in the order it changed them. */
export interface RouteChanges {
  readonly added: RouteStep[];
  readonly removed: RouteStep[];
}

/**
 * Add the steps not in place (cleanup: remove those in place), in plan order, recording and
 * logging each. A failed command goes to `fail`, which throws.
 */
export async function changeRoutes(
  runner: Runner,
  log: Logger,
  steps: readonly RouteStep[],
  state: RouteState,
  cleanupOnly: boolean,
  changes: RouteChanges,
  fail: (argv: string[], r: RunResult) => Promise<never>,
): Promise<void> {
  for (const step of steps) {
    if (state.has(step) !== cleanupOnly) continue;
    const argv = cleanupOnly ? routeDelArgs(step) : routeArgs(step);
    const r = await runner.run(argv);
    if (r.exitCode !== 0) await fail(argv, r);
    (cleanupOnly ? changes.removed : changes.added).push(step);
    log.info(`${cleanupOnly ? 'removed' : 'added'}: ${argv.join(' ')}`);
  }
}

/** Undo recorded changes, newest first (added ones, then removed ones); what failed, as `argv: stderr`. */
export async function undoRoutes(runner: Runner, changes: RouteChanges): Promise<string[]> {
  const problems: string[] = [];
  const undo = async (argv: string[]): Promise<void> => {
    const r = await runner.run(argv);
    if (r.exitCode !== 0) problems.push(`${argv.join(' ')}: ${r.stderr.trim()}`);
  };
  for (const step of [...changes.added].reverse()) await undo(routeDelArgs(step));
  for (const step of [...changes.removed].reverse()) await undo(routeArgs(step));
  return problems;
}
