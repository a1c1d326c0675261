import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { ApplyError } from '../errors.js';
import type { Family, RouteStep } from '../model/rule.js';
import type { InterfaceAddress } from '../config/host.js';
import { formatIpv6 } from '../config/net.js';
import type { Fact, Kernel } from '../platform/platform.js';
import { commandError, type Runner, type RunResult } from './commands.js';
import { changeArgs, type RouteBackend, type RouteFailure, type RouteState } from './routes.js';

/*
 * A namespace's kernel through commands: routing with `ip` (iproute2), addresses with `ip -j`,
 * /proc files with `cat`, all through a runner in the namespace (in this process's own namespace,
 * addresses and files are read directly). The Node platform's (Node cannot speak netlink), and a
 * library caller's own runner's. The entrypoint does the same over netlink
 * (platform/quickjs/netlink.ts).
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
interface IpLink {
  ifindex?: number;
  ifname?: string;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

/** A listing that fails is an error: read as "nothing there" it would add duplicates or skip removals. */
async function json<T>(runner: Runner, argv: string[]): Promise<T[]> {
  const r = await runner.run(argv);
  // A routing table nothing was ever added to does not exist yet: it holds nothing.
  if (r.exitCode !== 0 && /FIB table does not exist/.test(r.stderr)) return [];
  if (r.exitCode !== 0) throw commandError(`${argv.join(' ')} failed`, argv, r);
  if (r.stdout.trim() === '') return [];
  try {
    return JSON.parse(r.stdout) as T[];
  } catch {
    throw new ApplyError(`${argv.join(' ')} printed something other than JSON`, argv, r.stderr);
  }
}

const fam = (f: Family): string => (f === 'ipv4' ? '-4' : '-6');

const failure = (argv: readonly string[], r: RunResult): RouteFailure | null =>
  r.exitCode === 0 ? null : { kind: 'command', argv, exitCode: r.exitCode, stderr: r.stderr, notFound: r.notFound };

/** Read the current rules, routes and lo addresses the steps are about (one `ip -j` call per fact). */
async function readRouteState(runner: Runner, steps: readonly RouteStep[]): Promise<RouteState> {
  const rules = new Map<Family, IpRule[]>();
  const routes = new Map<string, IpRoute[]>();
  let loAddrs: IpLink[] | undefined;
  for (const s of steps) {
    if (s.kind === 'fwmarkRule' && !rules.has(s.family)) rules.set(s.family, await json<IpRule>(runner, ['ip', '-j', fam(s.family), 'rule', 'show']));
    if (s.kind === 'localRoute' && !routes.has(`${s.family}/${s.table}`)) {
      routes.set(`${s.family}/${s.table}`, await json<IpRoute>(runner, ['ip', '-j', fam(s.family), 'route', 'show', 'table', String(s.table)]));
    }
    if (s.kind === 'loopbackAddress' && loAddrs === undefined) loAddrs = await json<IpLink>(runner, ['ip', '-j', '-6', 'addr', 'show', 'dev', 'lo']);
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

/** Routing with `ip` through a runner: one command per change. */
export function ipRoutes(runner: Runner): RouteBackend {
  return {
    read: (steps) => readRouteState(runner, steps),
    change: async (step, op) => failure(changeArgs(step, op), await runner.run(changeArgs(step, op))),
  };
}

/** Addresses from `ip -j address show`: interface by interface in index order, each one's in the order listed. */
export function addressesOfLinks(links: readonly IpLink[]): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const l of [...links].sort((a, b) => (a.ifindex ?? 0) - (b.ifindex ?? 0))) {
    for (const a of l.addr_info ?? []) {
      if (a.local === undefined || (a.family !== 'inet' && a.family !== 'inet6')) continue;
      out.push({ address: a.local, family: a.family === 'inet' ? 'IPv4' : 'IPv6', loopback: (l.flags ?? []).includes('LOOPBACK') });
    }
  }
  return out;
}

/**
 * This process's own addresses, read without a process (a dry run must not start one, nor load
 * execa): interface by interface in the kernel's order (/proc/net/dev), each one's IPv4 addresses
 * first, as a netlink dump gives them. IPv6 from /proc/net/if_inet6 (every interface's, up or
 * down); IPv4 from Node's list, which libuv keeps to interfaces that are up and running, so an IPv4
 * address on an interface that is down is the one thing this misses against the kernel's own list
 * (`ip -j`, used through --network-namespace, and the entrypoint's netlink dump see it).
 */
export function localAddresses(): InterfaceAddress[] {
  const order = readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0]?.trim() ?? '')
    .filter((n) => n !== '');
  const byName = new Map<string, InterfaceAddress[]>(order.map((n) => [n, []]));
  const add = (name: string, a: InterfaceAddress) => {
    if (!byName.has(name)) byName.set(name, []);
    byName.get(name)?.push(a);
  };
  const listed = networkInterfaces();
  for (const [name, addrs] of Object.entries(listed)) for (const a of addrs ?? []) if (a.family === 'IPv4') add(name, { address: a.address, family: 'IPv4', loopback: a.internal });
  let inet6 = '';
  try {
    inet6 = readFileSync('/proc/net/if_inet6', 'utf8');
  } catch (err) {
    // No IPv6 in this kernel: no file, no IPv6 address.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const line of inet6.split('\n')) {
    const [hex = '', , , , , name = ''] = line.trim().split(/\s+/);
    if (!/^[0-9a-f]{32}$/.test(hex)) continue;
    const loopback = (listed[name] ?? []).some((a) => a.internal) || name === 'lo';
    add(name, { address: formatIpv6((hex.match(/.{4}/g) ?? []).map((g) => parseInt(g, 16))), family: 'IPv6', loopback });
  }
  return [...byName.values()].flat();
}

/**
 * The kernel of the runner's namespace through commands. `local`: the runner runs in this
 * process's own namespace, so /proc files are read directly; `where` names the namespace in the log.
 */
export function commandKernel(runner: Runner, local: boolean, where: string): Kernel {
  return {
    routes: ipRoutes(runner),
    async addresses() {
      if (local) return { value: localAddresses(), source: where };
      const argv = ['ip', '-j', 'address', 'show'];
      return { value: addressesOfLinks(await json<IpLink>(runner, argv)), source: where };
    },
    async netFile(path): Promise<Fact<string | undefined>> {
      if (local) {
        try {
          return { value: readFileSync(path, 'utf8'), source: `${path} ${where}` };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { value: undefined, source: `${path} ${where}` };
          throw new ApplyError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`, [], '');
        }
      }
      const argv = ['cat', path];
      const r = await runner.run(argv);
      if (r.exitCode !== 0 && /No such file/.test(r.stderr)) return { value: undefined, source: `${path} ${where}` };
      if (r.exitCode !== 0) throw commandError(`cat ${path} failed`, argv, r);
      return { value: r.stdout, source: `${path} ${where}` };
    },
  };
}
