import type { RouteStep } from '../model/rule.js';
import { routeArgs, routeDelArgs } from '../render/ip.js';
import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import { describeCommandFailure } from './commands.js';
import type { Transaction, Undo } from './engine.js';
import type { NetlinkFailure } from '../platform/host.js';

export { routeDelArgs };

/** Which routing steps are in place (the plan's, and those any run of ours adds). */
export interface RouteState {
  has(step: RouteStep): boolean;
}

/**
 * A routing change that failed, as what it is: `ip` run through a runner (Node: it has no
 * netlink), or the runtime's own netlink request (the entrypoint: native/netlink.c).
 */
export type RouteFailure =
  | { readonly kind: 'command'; readonly argv: readonly string[]; readonly exitCode: number; readonly stderr: string; readonly notFound: boolean }
  | ({ readonly kind: 'netlink' } & NetlinkFailure);

/**
 * How routing steps reach the kernel: `ip` through a runner (apply/command-kernel.ts), rtnetlink
 * in the entrypoint (platform/quickjs/netlink.ts). A change resolves to null when done, else to
 * what failed; reading fails with an ApplyError (a state read as "nothing there" would add
 * duplicates or skip removals).
 */
export interface RouteBackend {
  /** Read the rules, routes and addresses the steps are about. */
  read(steps: readonly RouteStep[]): Promise<RouteState>;
  /** Add or delete one step. */
  change(step: RouteStep, op: 'add' | 'del'): Promise<RouteFailure | null>;
}

/** The `ip` command line a step's change stands for: how logs and errors name the step, whoever did the work. */
export function changeArgs(step: RouteStep, op: 'add' | 'del'): string[] {
  return op === 'add' ? routeArgs(step) : routeDelArgs(step);
}

/** The one wording of a routing failure: after the step's name, what `ip` said or what the kernel answered over netlink. */
export function describeRouteFailure(f: RouteFailure): string {
  switch (f.kind) {
    case 'command':
      return describeCommandFailure(f.argv, { exitCode: f.exitCode, stdout: '', stderr: f.stderr, notFound: f.notFound });
    case 'netlink': {
      const why =
        f.where === 'kernel'
          ? (f.extack ?? f.text)
          : f.where === 'device'
            ? 'no device named lo'
            : f.where === 'namespace'
              ? `cannot enter the network namespace: ${f.text}`
              : `the netlink socket failed: ${f.text}`;
      return `(netlink, ${f.code}): ${why.replace(/\.$/, '')}`;
    }
  }
}

/** A step's change and how it failed, in a line: `ip -4 rule add fwmark 1337 lookup 133 failed (exit 2): ...`. */
export function routeFailureLine(step: RouteStep, op: 'add' | 'del', f: RouteFailure): string {
  return `${changeArgs(step, op).join(' ')} failed ${describeRouteFailure(f)}`;
}

const RANK = { loopbackAddress: 0, localRoute: 1, fwmarkRule: 2 } as const;

/**
 * The order steps are added in: the address, the routes, the fwmark rules last. Adding a rule that
 * is already there duplicates it, while an address or a route already there stops the family's
 * steps first; so where the routing is already in place nothing is added twice, and a run killed
 * part-way leaves no rule pointing at a table without its route. Removal goes the other way.
 */
export function addOrder(steps: readonly RouteStep[]): RouteStep[] {
  return [...steps].sort((a, b) => RANK[a.kind] - RANK[b.kind]);
}

const key = (s: RouteStep): string => changeArgs(s, 'add').join(' ');

/**
 * The routing changes that bring a namespace from `state` to `wanted`: the wanted steps missing,
 * added; the steps a run of ours adds (`owned`) that are there but not wanted, removed (removals
 * first, rules before routes before the address). Foreign rules, routes and addresses are never
 * among `owned`, so they stay.
 */
export function routeChanges(
  wanted: readonly RouteStep[],
  owned: readonly RouteStep[],
  state: RouteState,
): { step: RouteStep; op: 'add' | 'del' }[] {
  const want = new Set(wanted.map(key));
  const seen = new Set<string>();
  const del: RouteStep[] = [];
  for (const s of owned) {
    if (want.has(key(s)) || seen.has(key(s)) || !state.has(s)) continue;
    seen.add(key(s));
    del.push(s);
  }
  const add = addOrder(wanted).filter((s) => !state.has(s));
  return [...addOrder(del).reverse().map((step) => ({ step, op: 'del' as const })), ...add.map((step) => ({ step, op: 'add' as const }))];
}

/** The undo of a routing change: the opposite change. */
export function undoRoute(routes: RouteBackend, step: RouteStep, op: 'add' | 'del'): Undo {
  const back = op === 'add' ? 'del' : 'add';
  return {
    what: changeArgs(step, back).join(' '),
    async run() {
      const f = await routes.change(step, back);
      return f === null ? undefined : routeFailureLine(step, back, f);
    },
  };
}

/**
 * Make the routing changes (routeChanges), in order, each a step of the transaction, each logged
 * (`added: ip ...`, `removed: ip ...`); the first that fails throws an ApplyError naming it.
 * Resolves to the steps added and removed.
 */
export async function changeRoutes(
  routes: RouteBackend,
  changes: readonly { step: RouteStep; op: 'add' | 'del' }[],
  tx: Transaction,
  log: Logger,
): Promise<{ added: RouteStep[]; removed: RouteStep[] }> {
  const added: RouteStep[] = [];
  const removed: RouteStep[] = [];
  for (const { step, op } of changes) {
    const f = await routes.change(step, op);
    if (f !== null) throw new ApplyError(routeFailureLine(step, op, f), changeArgs(step, op), f.kind === 'command' ? f.stderr : '');
    tx.did(undoRoute(routes, step, op));
    (op === 'add' ? added : removed).push(step);
    log.info(`${op === 'add' ? 'added' : 'removed'}: ${changeArgs(step, op).join(' ')}`);
  }
  return { added, removed };
}
