/**
 * The entrypoint's view of a namespace's kernel over netlink (native/netlink.c), in place of
 * running `ip`: no process per family, and it works without root (the entrypoint holds
 * cap_net_admin as a file capability in the non-root image; `ip` would drop its capabilities
 * there). The kernel ends in the same state as with `ip` (the same requests); a failure is what
 * the kernel or the socket said (errno, extended ack, where), worded by apply/routes.ts.
 */
import type { Family, RouteStep } from '../../model/rule.js';
import type { RouteBackend, RouteFailure, RouteState } from '../../apply/routes.js';
import { ApplyError } from '../../errors.js';
import type { InterfaceAddress } from '../../config/host.js';
import type { Host, NetlinkAddress, NetlinkDump, NetlinkRoute, NetlinkRule } from '../host.js';

const RTN_LOCAL = 2;
const KIND = { fwmarkRule: 0, localRoute: 1, loopbackAddress: 2 } as const;
const fam = (f: Family): 4 | 6 => (f === 'ipv4' ? 4 : 6);

/** A netlink read that failed, as the error a run ends with. */
function readError(err: unknown): ApplyError {
  return new ApplyError(err instanceof Error ? err.message : String(err), [], '');
}

/** Read now (a dump), failing with an ApplyError. */
export function dump<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw readError(err);
  }
}

/** Every interface's addresses, interface by interface in index order (IPv4's, then IPv6's of each); Istio's rule walks every IPv4 one first (config/host.ts ipv6FromAddresses). */
export function netlinkAddresses(h: Host, ns: number | null): InterfaceAddress[] {
  const v4 = dump(() => h.netlinkDump(ns, 2, 4));
  const v6 = dump(() => h.netlinkDump(ns, 2, 6));
  const all: (NetlinkAddress & { family: 'IPv4' | 'IPv6' })[] = [...v4.items.map((a) => ({ ...a, family: 'IPv4' as const })), ...v6.items.map((a) => ({ ...a, family: 'IPv6' as const }))];
  // A stable sort: each interface's addresses keep the kernel's order.
  return all.sort((a, b) => a.index - b.index).map((a) => ({ address: a.address, family: a.family, loopback: a.index === v4.lo }));
}

export function netlinkRoutes(h: Host, ns: number | null): RouteBackend {
  const change = (step: RouteStep, op: 'add' | 'del'): RouteFailure | null => {
    const address = step.kind === 'loopbackAddress' ? step.cidr.address : '';
    const prefix = step.kind === 'loopbackAddress' ? step.cidr.prefixLength : 0;
    const mark = step.kind === 'fwmarkRule' ? step.mark : 0;
    const table = step.kind === 'loopbackAddress' ? 0 : step.table;
    const f = h.netlinkChange(ns, op === 'add' ? 0 : 1, KIND[step.kind], fam(step.family), mark, table, address, prefix);
    return f === null ? null : { kind: 'netlink', ...f };
  };
  return {
    async read(steps) {
      // Read now, once per kind and family the steps need: the state before this run changes anything.
      const rules = new Map<Family, NetlinkDump<NetlinkRule>>();
      const routes = new Map<Family, NetlinkDump<NetlinkRoute>>();
      const addresses = new Map<Family, NetlinkDump<NetlinkAddress>>();
      for (const s of steps) {
        const f = fam(s.family);
        if (s.kind === 'fwmarkRule' && !rules.has(s.family)) rules.set(s.family, dump(() => h.netlinkDump(ns, 0, f)));
        if (s.kind === 'localRoute' && !routes.has(s.family)) routes.set(s.family, dump(() => h.netlinkDump(ns, 1, f)));
        if (s.kind === 'loopbackAddress' && !addresses.has(s.family)) addresses.set(s.family, dump(() => h.netlinkDump(ns, 2, f)));
      }
      // The same facts the `ip -j` reader checks (apply/command-kernel.ts).
      const state: RouteState = {
        has(step) {
          switch (step.kind) {
            case 'fwmarkRule':
              return (rules.get(step.family)?.items ?? []).some((r) => r.mark === step.mark && r.table === step.table);
            case 'localRoute': {
              const d = routes.get(step.family);
              return (d?.items ?? []).some((r) => r.table === step.table && r.type === RTN_LOCAL && r.dstLength === 0 && r.oif === d?.lo);
            }
            case 'loopbackAddress': {
              const d = addresses.get(step.family);
              return (d?.items ?? []).some((a) => a.index === d?.lo && a.address === step.cidr.address && a.prefixLength === step.cidr.prefixLength);
            }
          }
        },
      };
      return state;
    },
    change: (step, op) => Promise.resolve(change(step, op)),
  };
}
