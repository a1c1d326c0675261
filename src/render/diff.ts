import type { DiffReport } from '../apply/diff.js';
import { routeArgs } from './ip.js';

const MARK = { missing: '-', unexpected: '+', order: '~' } as const;

const STATUS = { exact: 'in sync with the plan', absent: 'not applied', drift: 'drift', 'not compared': 'not compared' } as const;

/**
 * A diff report as `istio-iptables diff` prints it: a line per family (`in sync with the plan`,
 * `not applied`, `drift` or `not compared`, with the backend and any note), each differing rule
 * under it (`-` the plan has it and the namespace does not, `+` the namespace has it and the plan
 * does not, `~` same rules in another order), then `routing: - ip ...` for each routing step
 * missing and `routing: + ip ...` for each one there that the plan does not have.
 */
export function renderDiff(report: DiffReport): string {
  const lines: string[] = [];
  for (const f of report.families) {
    lines.push(`${f.family}: ${STATUS[f.status]} (${report.backend} backend${f.note === undefined ? '' : `; ${f.note}`})\n`);
    for (const d of f.rules) lines.push(`  ${MARK[d.kind]} ${d.table} ${d.chain}: ${d.rule}\n`);
  }
  for (const r of report.routes) lines.push(`routing: ${MARK[r.kind]} ${routeArgs(r.step).join(' ')}\n`);
  return lines.join('');
}

/** The same report as one JSON object (`diff --output json`), each difference with its mark and each routing step with its command. */
export function renderDiffJson(report: DiffReport): string {
  return `${JSON.stringify({
    inSync: report.inSync,
    backend: report.backend,
    evidence: report.evidence,
    families: report.families.map((f) => ({ ...f, rules: f.rules.map((d) => ({ mark: MARK[d.kind], ...d })) })),
    routes: report.routes.map((r) => ({ mark: MARK[r.kind], kind: r.kind, command: routeArgs(r.step).join(' '), step: r.step })),
  })}\n`;
}
