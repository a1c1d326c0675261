import type { DiffReport } from '../apply/diff.js';
import { routeArgs } from './ip.js';

const MARK = { missing: '-', unexpected: '+', order: '~' } as const;

/**
 * A diff report as `istio-iptables diff` prints it: a line per family (`in sync with the plan`,
 * `not applied` or `drift`, with the backend), each differing rule under it (`-` the plan has it
 * and the namespace does not, `+` the other way round, `~` same rules in another order), then
 * `routing: - ip ...` for each missing routing step.
 */
export function renderDiff(report: DiffReport): string {
  const lines: string[] = [];
  for (const f of report.families) {
    const what = f.status === 'exact' ? 'in sync with the plan' : f.status === 'absent' ? 'not applied' : 'drift';
    lines.push(`${f.family}: ${what} (${report.backend} backend)\n`);
    for (const d of f.rules) lines.push(`  ${MARK[d.kind]} ${d.table} ${d.chain}: ${d.rule}\n`);
  }
  for (const step of report.missingRoutes) lines.push(`routing: - ${routeArgs(step).join(' ')}\n`);
  return lines.join('');
}
