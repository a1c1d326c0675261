import { BUILTIN_CHAINS, unhandled, type Family, type Plan, type Rule, type Table, type Target } from '../../model/rule.js';
import { routeArgs } from '../ip.js';
import { renderMermaid, renderSvg, type Diagram, type DiagramEdge, type DiagramLane, type DiagramNode, type NodeKind } from './diagram.js';

/**
 * The plan's chain graph: per hook and table (in the order a packet meets them), the built-in
 * chain, the chains it jumps to (by depth), and where their rules send packets (the exits:
 * REDIRECT to a port, TPROXY, RETURN, a mark, a conntrack zone, DROP), with rule counts.
 */

/** Hooks in the order a packet meets them, and tables by priority at each. */
const LANES: readonly { readonly table: Table; readonly hook: string }[] = [
  { table: 'raw', hook: 'PREROUTING' },
  { table: 'mangle', hook: 'PREROUTING' },
  { table: 'nat', hook: 'PREROUTING' },
  { table: 'raw', hook: 'OUTPUT' },
  { table: 'mangle', hook: 'OUTPUT' },
  { table: 'nat', hook: 'OUTPUT' },
  { table: 'filter', hook: 'OUTPUT' },
  { table: 'mangle', hook: 'POSTROUTING' },
  { table: 'nat', hook: 'POSTROUTING' },
];

/** Where a rule sends a packet, as an exit node's label and kind; undefined for a jump. */
function exitOf(t: Target, builtin: boolean): { label: string; kind: NodeKind } | undefined {
  switch (t.kind) {
    case 'jump':
      return undefined;
    case 'return':
      return { label: builtin ? 'RETURN (policy ACCEPT)' : 'RETURN', kind: 'exit' };
    case 'accept':
      return { label: 'ACCEPT', kind: 'exit' };
    case 'drop':
      return { label: 'DROP', kind: 'drop' };
    case 'redirect':
      return { label: `REDIRECT to :${t.toPort}`, kind: 'capture' };
    case 'tproxy':
      return { label: `TPROXY to :${t.onPort}, mark ${t.mark}`, kind: 'capture' };
    case 'setMark':
      return { label: `MARK ${t.mark}, go on`, kind: 'exit' };
    case 'connmarkSave':
      return { label: 'CONNMARK save, go on', kind: 'exit' };
    case 'connmarkRestore':
      return { label: 'CONNMARK restore, go on', kind: 'exit' };
    case 'ct':
      return { label: `CT zone ${t.zone}, go on`, kind: 'exit' };
    default:
      return unhandled(t);
  }
}

/** "3 rules", or per family when they differ: "3 IPv4 / 4 IPv6 rules". */
function countText(counts: Readonly<Record<Family, number>>, ipv6: boolean): string {
  const plural = (n: number): string => (n === 1 ? '' : 's');
  if (!ipv6 || counts.ipv4 === counts.ipv6) return `${counts.ipv4 || counts.ipv6} rule${plural(counts.ipv4 || counts.ipv6)}`;
  return `${counts.ipv4} IPv4 / ${counts.ipv6} IPv6 rule${plural(counts.ipv6)}`;
}

/** An edge's rule count: "3", or per family when they differ: "1 IPv4, 0 IPv6". */
function edgeText(counts: Readonly<Record<Family, number>>, ipv6: boolean): string {
  return !ipv6 || counts.ipv4 === counts.ipv6 ? `${counts.ipv4 || counts.ipv6}` : `${counts.ipv4} IPv4, ${counts.ipv6} IPv6`;
}

/** The chain graph as a diagram. */
export function planDiagram(plan: Plan): Diagram {
  const ipv6 = plan.ipv6 !== null;
  const lanes: DiagramLane[] = [];
  const edges: DiagramEdge[] = [];
  let next = 0;
  for (const { table, hook } of LANES) {
    const rules = plan.rules.filter((r) => r.table === table);
    if (!rules.some((r) => r.chain === hook)) continue;
    // Chains reachable from the hook's built-in chain, each at its depth (longest jump path).
    const depth = new Map<string, number>([[hook, 0]]);
    const order: string[] = [hook];
    for (let i = 0; i < order.length; i++) {
      const chain = order[i] as string;
      for (const r of rules) {
        if (r.chain !== chain || r.target.kind !== 'jump') continue;
        const to = r.target.chain;
        if (!depth.has(to)) order.push(to);
        depth.set(to, Math.max(depth.get(to) ?? 0, (depth.get(chain) ?? 0) + 1));
      }
    }
    const ids = new Map<string, string>();
    const nodes: DiagramNode[] = [];
    const rows: number[] = [];
    const place = (col: number): number => {
      rows[col] = (rows[col] ?? -1) + 1;
      return rows[col] as number;
    };
    const count = (pred: (r: Rule) => boolean): Record<Family, number> => ({
      ipv4: plan.ipv4.rules.filter((r) => r.table === table && pred(r)).length,
      ipv6: plan.ipv6?.rules.filter((r) => r.table === table && pred(r)).length ?? 0,
    });
    for (const chain of order) {
      const id = `n${next++}`;
      ids.set(chain, id);
      const col = depth.get(chain) ?? 0;
      const title = BUILTIN_CHAINS.has(chain) ? `${table} ${chain}` : chain;
      nodes.push({ id, col, row: place(col), lines: [title, countText(count((r) => r.chain === chain), ipv6)], kind: BUILTIN_CHAINS.has(chain) ? 'builtin' : 'chain' });
    }
    const exitCol = Math.max(...depth.values()) + 1;
    const exits = new Map<string, string>();
    const seen = new Set<string>();
    for (const chain of order) {
      const from = ids.get(chain) as string;
      for (const r of rules) {
        if (r.chain !== chain) continue;
        const exit = exitOf(r.target, BUILTIN_CHAINS.has(chain));
        const key = exit === undefined ? `jump ${r.target.kind === 'jump' ? r.target.chain : ''}` : `exit ${exit.label}`;
        if (seen.has(`${chain} ${key}`)) continue;
        seen.add(`${chain} ${key}`);
        let to: string;
        if (exit === undefined) {
          to = ids.get(r.target.kind === 'jump' ? r.target.chain : '') as string;
        } else {
          if (!exits.has(exit.label)) {
            const id = `n${next++}`;
            exits.set(exit.label, id);
            nodes.push({ id, col: exitCol, row: place(exitCol), lines: [exit.label], kind: exit.kind });
          }
          to = exits.get(exit.label) as string;
        }
        const same = (x: Rule): boolean => x.chain === chain && (exit === undefined ? x.target.kind === 'jump' && r.target.kind === 'jump' && x.target.chain === r.target.chain : exitOf(x.target, BUILTIN_CHAINS.has(chain))?.label === exit.label);
        edges.push({ from, to, label: edgeText(count(same), ipv6) });
      }
    }
    lanes.push({ title: `${hook} · ${table}`, nodes });
  }
  const notes = [
    `${plan.rules.length} rules; IPv6 ${ipv6 ? 'enabled' : 'disabled'}; chains by hook and table, in the order a packet meets them`,
    ...plan.routes.map((step) => `routing: ${routeArgs(step).join(' ')}`),
  ];
  return { title: 'istio-iptables: the chain graph of this plan', notes, lanes, edges, direction: 'LR', columns: 'shared' };
}

/** `--dry-run --output svg`: the chain graph as SVG. */
export function renderPlanSvg(plan: Plan): string {
  return renderSvg(planDiagram(plan));
}

/** `--dry-run --output mermaid`: the chain graph as a Mermaid flowchart. */
export function renderPlanMermaid(plan: Plan): string {
  return renderMermaid(planDiagram(plan));
}
