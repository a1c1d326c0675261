import { BUILTIN_CHAINS, type FamilyRules } from '../model/rule.js';
import { joinSections, ruleSpec } from '../render/restore.js';

/* Restore payloads and restore output, as the fast path needs them (apart from state.ts, which
   reads and compares whole namespace states, so that the fast path does not load it). */

/** Tables a payload touches. */
export function tablesOf(payload: string): string[] {
  return payload
    .split('\n')
    .filter((l) => l.startsWith('*'))
    .map((l) => l.slice(1).trim());
}

/**
 * Undo exactly what the plan's restore payload adds to the given tables, from the plan alone:
 * delete our rules from built-in chains (by their specification), then flush and delete our
 * chains. Used when a fresh apply fails part-way, where the tables were free of ours before.
 */
export function removalPayload(family: FamilyRules, tables: ReadonlySet<string>): string {
  const sections = new Map<string, string[]>();
  for (const r of [...family.rules].reverse()) {
    if (!tables.has(r.table) || !BUILTIN_CHAINS.has(r.chain)) continue;
    sections.set(r.table, [...(sections.get(r.table) ?? []), `-D ${r.chain} ${ruleSpec(r).join(' ')}`]);
  }
  for (const [table, chains] of family.chains) {
    if (!tables.has(table)) continue;
    sections.set(table, [...(sections.get(table) ?? []), ...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`)]);
  }
  return joinSections(sections);
}

/** The line iptables-restore reports as failed ("line N failed"), if it says. */
export function failedLine(stderr: string): number | undefined {
  const m = /line (\d+) failed/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/**
 * Tables a restore run committed before failing at `line` (each table commits at its COMMIT
 * line). With no line number known, every table may have been committed.
 */
export function committedBefore(payload: string, line: number | undefined): string[] {
  const out: string[] = [];
  let table = '';
  payload.split('\n').forEach((l, i) => {
    if (l.startsWith('*')) table = l.slice(1);
    if (l === 'COMMIT' && (line === undefined || i + 1 < line)) out.push(table);
  });
  return out;
}
