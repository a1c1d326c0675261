import { renderMermaid, renderSvg, wrap, type Diagram, type DiagramEdge, type DiagramLane, type DiagramNode, type NodeKind } from '../render/picture/diagram.js';
import type { Flow, TraceResult, TraceStep } from './types.js';
import { describeFlow, hostPort, landingLines, verdictWords } from './words.js';

/**
 * `trace ... --output svg|mermaid`: the packet's path as a picture. Top to bottom: the sender,
 * each hook the packet passes (a row per table, the rules met left to right, the deciding ones
 * marked), then the verdict, where the connection lands and what the app sees.
 */

/** Characters per line in a node. */
const WIDTH = 64;

function stepNode(id: string, col: number, row: number, s: TraceStep, deciding: boolean): DiagramNode {
  if (s.action === 'nomatch') {
    return { id, col, row, lines: [`${s.chain} #${s.position}: no match`, `fails ${s.failed ?? ''}`, ...wrap(s.rule, WIDTH)], kind: 'note' };
  }
  const kind: NodeKind = deciding ? 'decider' : 'step';
  return { id, col, row, lines: [`${s.chain} #${s.position}: ${s.action}`, ...wrap(s.rule, WIDTH), ...wrap(s.why.purpose, WIDTH)], kind };
}

/** The packet's path as a diagram. */
export function traceDiagram(flow: Flow, result: TraceResult): Diagram {
  const lanes: DiagramLane[] = [];
  const edges: DiagramEdge[] = [];
  let next = 0;
  const id = (): string => `n${next++}`;
  const sender = flow.direction === 'inbound' ? `client ${hostPort(flow.src, flow.sport)}` : `app ${hostPort(flow.src, flow.sport)}${flow.uid === undefined ? '' : ` (uid ${flow.uid}${flow.gid === undefined ? '' : `, gid ${flow.gid}`})`}`;
  const start = id();
  lanes.push({ title: flow.direction === 'inbound' ? 'sender (outside the pod)' : 'sender (a process in the pod)', nodes: [{ id: start, col: 0, row: 0, lines: [sender, `${flow.protocol} to ${hostPort(flow.dst, flow.dport)}`, describeFlow(flow)], kind: 'endpoint' }] });
  let anchor = start;
  const deciding = new Set(result.reason.rules);
  let sentOut = false;
  for (const hook of result.hooks) {
    const steps = result.path.filter((s) => s.hook === hook);
    const back = sentOut && (hook === 'PREROUTING' || hook === 'INPUT');
    if (hook === 'OUTPUT' || hook === 'POSTROUTING') sentOut = true;
    const title = `${hook}${back ? ' (back in through lo)' : hook === 'PREROUTING' && flow.direction === 'inbound' ? ` (in on ${flow.inInterface ?? 'eth0'})` : ''}`;
    const nodes: DiagramNode[] = [];
    const tables = [...new Set(steps.map((s) => s.table))];
    if (tables.length === 0) {
      const n = id();
      nodes.push({ id: n, col: 0, row: 0, lines: [hook, 'no rule of ours matched'], kind: 'builtin' });
      edges.push({ from: anchor, to: n });
      anchor = n;
    }
    tables.forEach((table, row) => {
      const head = id();
      nodes.push({ id: head, col: 0, row, lines: [`${table} ${hook}`], kind: 'builtin' });
      edges.push({ from: anchor, to: head });
      let prev = head;
      steps
        .filter((s) => s.table === table)
        .forEach((s, i) => {
          const n = id();
          nodes.push(stepNode(n, i + 1, row, s, deciding.has(s.rule) && s.action !== 'nomatch'));
          edges.push({ from: prev, to: n });
          prev = n;
        });
      anchor = head;
    });
    lanes.push({ title, nodes });
  }
  const end = id();
  const kind: NodeKind = result.verdict === 'drop' ? 'drop' : result.verdict === 'pass' ? 'exit' : 'capture';
  const verdictNodes: DiagramNode[] = [{ id: end, col: 0, row: 0, lines: [`verdict: ${verdictWords(result)}`, ...wrap(result.reason.text, WIDTH)], kind }];
  edges.push({ from: anchor, to: end });
  const landing = landingLines(flow, result);
  if (landing.length > 0) {
    const n = id();
    verdictNodes.push({ id: n, col: 1, row: 0, lines: landing.flatMap((l, i) => (i === 0 ? wrap(l, WIDTH) : ['', ...wrap(l, WIDTH)])), kind: 'endpoint' });
    edges.push({ from: end, to: n });
  }
  lanes.push({ title: 'verdict', nodes: verdictNodes });
  return { title: `istio-iptables trace: ${describeFlow(flow)}`, notes: [`verdict: ${verdictWords(result)}`], lanes, edges, direction: 'TD', columns: 'per-lane' };
}

/** The packet's path as SVG. */
export function renderTraceSvg(flow: Flow, result: TraceResult): string {
  return renderSvg(traceDiagram(flow, result));
}

/** The packet's path as a Mermaid flowchart. */
export function renderTraceMermaid(flow: Flow, result: TraceResult): string {
  return renderMermaid(traceDiagram(flow, result));
}
