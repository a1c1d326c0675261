/**
 * A small diagram model and its two renderings: SVG (laid out here) and Mermaid (laid out by
 * whoever renders it, e.g. GitHub).
 *
 * Why our own layout rather than a layout library (such as Graphviz compiled to WebAssembly): the
 * pictures are few and regular. A chain graph is a shallow tree per hook and table (a built-in
 * chain, our chains one or two jumps deep, their exits); a packet's path is a sequence of hooks,
 * each a row of rules per table. Columns by depth and rows in rule order lay both out without
 * crossings to speak of, in ~150 lines, with text measured exactly (one monospace font). It needs
 * no dependency (a WebAssembly Graphviz is ~1.5 MB and an asynchronous start), runs on the
 * entrypoint's runtime (which has no WebAssembly) so both programs draw the same picture, and its
 * output is byte-for-byte stable, so the pictures in docs/ can be checked to be current.
 */

/** How a node is drawn. */
export type NodeKind = 'builtin' | 'chain' | 'exit' | 'capture' | 'drop' | 'decider' | 'step' | 'endpoint' | 'note';

export interface DiagramNode {
  readonly id: string;
  readonly col: number;
  readonly row: number;
  /** The first line is the node's title (bold); the rest are details. */
  readonly lines: readonly string[];
  readonly kind: NodeKind;
}

export interface DiagramEdge {
  readonly from: string;
  readonly to: string;
  readonly label?: string;
}

/** A band of the picture (a hook, a table at a hook), stacked top to bottom. */
export interface DiagramLane {
  readonly title: string;
  readonly nodes: readonly DiagramNode[];
}

export interface Diagram {
  readonly title: string;
  /** Lines under the title. */
  readonly notes: readonly string[];
  readonly lanes: readonly DiagramLane[];
  readonly edges: readonly DiagramEdge[];
  /** Mermaid's direction: LR (left to right) or TD (top down). */
  readonly direction: 'LR' | 'TD';
  /** Whether columns line up across lanes (a chain graph) or each lane sizes its own (a path). */
  readonly columns: 'shared' | 'per-lane';
}

const FONT = 12;
/** DejaVu Sans Mono's advance is 0.602 em; a little over, so text never touches a border. */
const CHAR = 7.3;
const LINE = 16;
const PAD = 8;
const COL_GAP = 100;
const ROW_GAP = 18;
const LANE_TITLE = 24;
const LANE_GAP = 16;
const MARGIN = 16;

const STYLE: Readonly<Record<NodeKind, { readonly fill: string; readonly stroke: string; readonly width: number }>> = {
  builtin: { fill: '#e6e6e6', stroke: '#555555', width: 1.5 },
  chain: { fill: '#e8f0fc', stroke: '#3b6db3', width: 1.5 },
  exit: { fill: '#f4f4f4', stroke: '#888888', width: 1 },
  capture: { fill: '#e3f5e1', stroke: '#2f8a2f', width: 1.5 },
  drop: { fill: '#fbe3e3', stroke: '#b33a3a', width: 1.5 },
  decider: { fill: '#fff2c2', stroke: '#b58100', width: 3 },
  step: { fill: '#ffffff', stroke: '#3b6db3', width: 1 },
  endpoint: { fill: '#ffffff', stroke: '#222222', width: 1.5 },
  note: { fill: '#fafafa', stroke: '#aaaaaa', width: 1 },
};

const xml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const textWidth = (text: string): number => Math.ceil(text.length * CHAR);

interface Box {
  readonly node: DiagramNode;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** The picture as SVG: lanes stacked, nodes in columns by `col` and rows by `row`, edges as curves. */
export function renderSvg(d: Diagram): string {
  const size = (n: DiagramNode): { w: number; h: number } => ({ w: Math.max(...n.lines.map(textWidth), 40) + 2 * PAD, h: n.lines.length * LINE + 2 * PAD - 4 });
  /** Each column's left edge for these nodes, and the right edge of the last. */
  const columns = (nodes: readonly DiagramNode[]): { colX: number[]; right: number } => {
    const colWidth: number[] = [];
    for (const n of nodes) colWidth[n.col] = Math.max(colWidth[n.col] ?? 0, size(n).w);
    const colX: number[] = [];
    let x = MARGIN;
    for (let c = 0; c < colWidth.length; c++) {
      colX[c] = x;
      x += (colWidth[c] ?? 0) + (colWidth[c] === undefined ? 0 : COL_GAP);
    }
    return { colX, right: x - COL_GAP };
  };
  const shared = columns(d.lanes.flatMap((l) => l.nodes));
  let right = d.columns === 'shared' ? shared.right : 0;
  const headerLines = [d.title, ...d.notes];
  let y = MARGIN + headerLines.length * (LINE + 2) + 6;
  const boxes = new Map<string, Box>();
  const bands: { title: string; y: number; h: number }[] = [];
  for (const lane of d.lanes) {
    const { colX } = d.columns === 'shared' ? shared : columns(lane.nodes);
    if (d.columns === 'per-lane') right = Math.max(right, columns(lane.nodes).right);
    const top = y;
    y += LANE_TITLE;
    const rowHeight: number[] = [];
    for (const n of lane.nodes) rowHeight[n.row] = Math.max(rowHeight[n.row] ?? 0, size(n).h);
    const rowY: number[] = [];
    for (let r = 0; r < rowHeight.length; r++) {
      rowY[r] = y;
      if (rowHeight[r] !== undefined) y += (rowHeight[r] ?? 0) + ROW_GAP;
    }
    for (const n of lane.nodes) {
      const { w, h } = size(n);
      boxes.set(n.id, { node: n, x: colX[n.col] ?? MARGIN, y: (rowY[n.row] ?? y) + ((rowHeight[n.row] ?? h) - h) / 2, w, h });
    }
    y += 4;
    bands.push({ title: lane.title, y: top, h: y - top });
    y += LANE_GAP;
  }
  const width = Math.max(right + MARGIN, ...headerLines.map((l) => textWidth(l) + 2 * MARGIN), 200);
  const height = y - LANE_GAP + MARGIN;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="${FONT}">`);
  out.push(`<title>${xml(d.title)}</title>`);
  out.push('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444444"/></marker></defs>');
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  headerLines.forEach((line, i) => {
    out.push(`<text x="${MARGIN}" y="${MARGIN + 12 + i * (LINE + 2)}"${i === 0 ? ' font-weight="bold" font-size="14"' : ' fill="#444444"'}>${xml(line)}</text>`);
  });
  bands.forEach((b, i) => {
    out.push(`<rect x="${MARGIN / 2}" y="${b.y}" width="${width - MARGIN}" height="${b.h}" rx="6" fill="${i % 2 === 0 ? '#f6f8fb' : '#fbfaf6'}" stroke="#d0d4da"/>`);
    out.push(`<text x="${MARGIN}" y="${b.y + 16}" font-weight="bold" fill="#333333">${xml(b.title)}</text>`);
  });
  for (const e of d.edges) {
    const a = boxes.get(e.from);
    const b = boxes.get(e.to);
    if (a === undefined || b === undefined) continue;
    const path = edgePath(a, b);
    out.push(`<path class="edge" d="${path.d}" fill="none" stroke="#444444" stroke-width="1.3" marker-end="url(#arrow)"/>`);
    if (e.label !== undefined) {
      const w = textWidth(e.label) + 6;
      out.push(`<rect x="${path.lx - w / 2}" y="${path.ly - 9}" width="${w}" height="14" fill="#ffffff" opacity="0.85"/>`);
      out.push(`<text x="${path.lx}" y="${path.ly + 2}" text-anchor="middle" font-size="11" fill="#333333">${xml(e.label)}</text>`);
    }
  }
  for (const b of boxes.values()) {
    const s = STYLE[b.node.kind];
    out.push(`<g class="node ${b.node.kind}">`);
    out.push(`<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="5" fill="${s.fill}" stroke="${s.stroke}" stroke-width="${s.width}"/>`);
    b.node.lines.forEach((line, i) => {
      out.push(`<text x="${b.x + PAD}" y="${b.y + PAD + 9 + i * LINE}"${i === 0 ? ' font-weight="bold"' : ' fill="#333333"'}>${xml(line)}</text>`);
    });
    out.push('</g>');
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** A curve from box a to box b: sideways when b is to the right, else down (or up) between them. */
function edgePath(a: Box, b: Box): { d: string; lx: number; ly: number } {
  const r = (n: number): number => Math.round(n);
  if (b.x >= a.x + a.w) {
    const [x1, y1, x2, y2] = [a.x + a.w, a.y + a.h / 2, b.x, b.y + b.h / 2];
    const mid = (x1 + x2) / 2;
    // The label sits near the target, where edges fanning out of one node have parted.
    const t = 0.72;
    const lx = (1 - t) ** 3 * x1 + 3 * (1 - t) ** 2 * t * mid + 3 * (1 - t) * t ** 2 * mid + t ** 3 * x2;
    const ly = (1 - t) ** 3 * y1 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t ** 2 * y2 + t ** 3 * y2;
    return { d: `M ${r(x1)} ${r(y1)} C ${r(mid)} ${r(y1)}, ${r(mid)} ${r(y2)}, ${r(x2)} ${r(y2)}`, lx: r(lx), ly: r(ly) };
  }
  const down = b.y >= a.y + a.h;
  const x1 = a.x + Math.min(a.w, b.w) / 2;
  const x2 = b.x + Math.min(a.w, b.w) / 2;
  const y1 = down ? a.y + a.h : a.y;
  const y2 = down ? b.y : b.y + b.h;
  const mid = (y1 + y2) / 2;
  return { d: `M ${r(x1)} ${r(y1)} C ${r(x1)} ${r(mid)}, ${r(x2)} ${r(mid)}, ${r(x2)} ${r(y2)}`, lx: r((x1 + x2) / 2), ly: r(mid) };
}

/** Text cut into lines of at most `width` characters, at spaces where it can. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return lines;
}

/** Text for a Mermaid label: quotes, angle brackets, '#' and ';' as Mermaid's entity codes. */
function mermaidText(text: string): string {
  return text.replace(/[#"<>;&|]/g, (c) => `#${c.charCodeAt(0)};`);
}

const MERMAID_CLASS: Readonly<Record<NodeKind, string>> = {
  builtin: 'fill:#e6e6e6,stroke:#555555',
  chain: 'fill:#e8f0fc,stroke:#3b6db3',
  exit: 'fill:#f4f4f4,stroke:#888888',
  capture: 'fill:#e3f5e1,stroke:#2f8a2f',
  drop: 'fill:#fbe3e3,stroke:#b33a3a',
  decider: 'fill:#fff2c2,stroke:#b58100,stroke-width:3px',
  step: 'fill:#ffffff,stroke:#3b6db3',
  endpoint: 'fill:#ffffff,stroke:#222222',
  note: 'fill:#fafafa,stroke:#aaaaaa',
};

/** The picture as a Mermaid flowchart (GitHub renders it in issues and Markdown). */
export function renderMermaid(d: Diagram): string {
  const out: string[] = [`flowchart ${d.direction}`];
  // Mermaid has no title line in a flowchart; the title and notes go in as a comment.
  for (const line of [d.title, ...d.notes]) out.push(`  %% ${line.replace(/%%/g, '%')}`);
  const used = new Set<NodeKind>();
  d.lanes.forEach((lane, i) => {
    out.push(`  subgraph lane${i}["${mermaidText(lane.title)}"]`);
    for (const n of lane.nodes) {
      used.add(n.kind);
      const label = n.lines.map((l, j) => (j === 0 ? `<b>${mermaidText(l)}</b>` : mermaidText(l))).join('<br/>');
      out.push(`    ${n.id}["${label}"]:::${n.kind}`);
    }
    out.push('  end');
  });
  for (const e of d.edges) out.push(`  ${e.from} -->${e.label === undefined ? '' : `|"${mermaidText(e.label)}"|`} ${e.to}`);
  for (const kind of Object.keys(MERMAID_CLASS) as NodeKind[]) if (used.has(kind)) out.push(`  classDef ${kind} ${MERMAID_CLASS[kind]}`);
  return `${out.join('\n')}\n`;
}
