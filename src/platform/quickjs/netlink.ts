/**
 * The entrypoint's routing steps over rtnetlink (native/netlink.c), in place of running `ip`:
 * no process per family, and it works without root (the entrypoint holds cap_net_admin as a file
 * capability in the non-root image; `ip` would drop its capabilities there). The kernel ends in
 * the same state as with `ip` (the same requests), and each result reads as `ip`'s would: exit
 * status 2 and `RTNETLINK answers: File exists`, or ip's `Error: <the kernel's message>.`.
 */
import type { Family, RouteStep } from '../../model/rule.js';
import { namespaceFile, type RunResult } from '../../apply/commands.js';
import type { RouteBackend, RouteState } from '../../apply/routes.js';
import { ApplyError } from '../../errors.js';
import type { Host, NetlinkAddress, NetlinkDump, NetlinkFailure, NetlinkRoute, NetlinkRule } from '../host.js';

const RTN_LOCAL = 2;
const KIND = { fwmarkRule: 0, localRoute: 1, loopbackAddress: 2 } as const;
const fam = (f: Family): 4 | 6 => (f === 'ipv4' ? 4 : 6);

/** A change's outcome as `ip` reports it. */
export function ipResult(f: NetlinkFailure | null, ns: string | null): RunResult {
  if (f === null) return { exitCode: 0, stdout: '', stderr: '', notFound: false };
  const [exitCode, line] =
    f.where === 'kernel'
      ? [2, f.extack === null ? `RTNETLINK answers: ${f.text}` : `Error: ${f.extack}${f.extack.endsWith('.') ? '' : '.'}`]
      : f.where === 'device'
        ? [1, 'Cannot find device "lo"']
        : f.where === 'namespace'
          ? [1, `Cannot open network namespace "${ns ?? ''}": ${f.text}`]
          : [1, `rtnetlink: ${f.text}`];
  return { exitCode, stdout: '', stderr: `${line}\n`, notFound: false };
}

export function netlinkRoutes(h: Host, namespace: string | undefined): RouteBackend {
  const ns = namespaceFile(namespace) ?? null;
  const change = (step: RouteStep, op: 'add' | 'del'): RunResult => {
    const address = step.kind === 'loopbackAddress' ? step.cidr.address : '';
    const prefix = step.kind === 'loopbackAddress' ? step.cidr.prefixLength : 0;
    const mark = step.kind === 'fwmarkRule' ? step.mark : 0;
    const table = step.kind === 'loopbackAddress' ? 0 : step.table;
    return ipResult(h.netlinkChange(ns, op === 'add' ? 0 : 1, KIND[step.kind], fam(step.family), mark, table, address, prefix), ns);
  };
  const dump = <T>(read: () => T): T => {
    try {
      return read();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new ApplyError(message, [], '');
    }
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
      // The same facts the `ip -j` reader checks (apply/ip-routes.ts).
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
    addAll(steps) {
      const out: { step: RouteStep; r: RunResult }[] = [];
      for (const family of ['ipv4', 'ipv6'] as const) {
        for (const step of steps.filter((s) => s.family === family)) {
          const r = change(step, 'add');
          out.push({ step, r });
          if (r.exitCode !== 0) break;
        }
      }
      return Promise.resolve(out);
    },
  };
}
