import { ApplyError } from '../errors.js';
import type { Family, RouteStep } from '../model/rule.js';
import { routeArgs } from '../render/ip.js';
import { changeArgs, type RouteBackend, type RouteState } from './routes.js';
import type { Runner } from './runner.js';

/*
 * Routing steps with the `ip` command (iproute2), for the Node CLI: Node cannot speak netlink.
 * The entrypoint does the same over rtnetlink itself (platform/quickjs/netlink.ts).
 */

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

/** The command line of the fast path's routing steps for one family (fed the steps on stdin). */
export function ipBatchCommand(family: Family): string[] {
  return ['ip', fam(family), '-batch', '-'];
}

/** The line `ip -batch -` stopped at ("Command failed -:3"), 1-based. */
export function batchFailedLine(stderr: string): number | undefined {
  const m = /Command failed -:(\d+)/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** Read the current rules, routes and lo addresses the steps are about (one `ip -j` call per fact). */
async function readRouteState(runner: Runner, steps: readonly RouteStep[]): Promise<RouteState> {
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

/** Routing with `ip` through a runner: one command per change; the fast path one `ip -batch` per family. */
export function ipRoutes(runner: Runner): RouteBackend {
  return {
    read: (steps) => readRouteState(runner, steps),
    change: (step, op) => runner.run(changeArgs(step, op)),
    // A process costs ~1 ms on this path and a TPROXY dual-stack plan has five steps. ip stops at
    // the first failing line and names it, so each step is known to have been done or not, and a
    // failure still names its own command.
    async addAll(steps) {
      const perFamily = (['ipv4', 'ipv6'] as const).map(async (family) => {
        const mine = steps.filter((s) => s.family === family);
        if (mine.length === 0) return [];
        const lines = mine.map((s) => `${routeArgs(s).slice(2).join(' ')}\n`).join('');
        const r = await runner.run(ipBatchCommand(family), lines);
        const failed = r.exitCode === 0 ? 0 : (batchFailedLine(r.stderr) ?? 1);
        // Steps before the failing line were done; the failing one carries the result; none after ran.
        return mine.flatMap((step, i) => (failed !== 0 && i + 1 > failed ? [] : [{ step, r: failed === i + 1 ? r : { ...r, exitCode: 0 } }]));
      });
      return (await Promise.all(perFamily)).flat();
    },
  };
}
