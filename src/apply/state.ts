import { BUILTIN_CHAINS, type FamilyRules, type Table } from '../model/rule.js';
import { joinSections, restoreSections, ruleSpec } from '../render/restore.js';
import { expectedState, type ExpectedTable, type OwnerResolver } from './saveform.js';

/**
 * Reading a namespace's iptables state and comparing it with the plan. Pure: the dump comes in
 * as text, decisions and payloads go out as data and text.
 */

export interface SavedChain {
  readonly policy: string;
  readonly rules: string[];
}

export interface SavedTable {
  readonly chains: Map<string, SavedChain>;
  /** The table's section as dumped, `*table` to COMMIT, for putting it back exactly. */
  readonly text: string;
}

export type SavedState = ReadonlyMap<string, SavedTable>;

/** Parse `iptables-save` output (comments and counters allowed). */
export function parseSave(text: string): SavedState {
  const out = new Map<string, SavedTable>();
  let current: { name: string; chains: Map<string, SavedChain>; lines: string[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { name: line.slice(1).trim(), chains: new Map(), lines: [line] };
      continue;
    }
    if (current === undefined) continue;
    current.lines.push(line);
    if (line === 'COMMIT') {
      out.set(current.name, { chains: current.chains, text: `${current.lines.join('\n')}\n` });
      current = undefined;
    } else if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(' ');
      current.chains.set(name, { policy, rules: [] });
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const sp = rest.indexOf(' ');
      const chain = sp < 0 ? rest : rest.slice(0, sp);
      const spec = sp < 0 ? '' : rest.slice(sp + 1);
      const c = current.chains.get(chain) ?? { policy: '-', rules: [] };
      c.rules.push(spec);
      current.chains.set(chain, c);
    }
  }
  return out;
}

const isOwnChain = (name: string): boolean => name.startsWith('ISTIO_');
const jumpsToOwn = (spec: string): boolean => / -j ISTIO_[A-Z_]+$|^-j ISTIO_[A-Z_]+$/.test(spec);

/** Our footprint in one table of a live dump. */
export interface TableFootprint {
  readonly ownChains: readonly string[];
  /** Our rules in built-in chains, as `[chain, spec]`, in dump order. */
  readonly builtinRules: readonly (readonly [string, string])[];
}

export interface Assessment {
  /** absent: nothing of ours; exact: exactly the plan; drift: something else of ours. */
  readonly status: 'absent' | 'exact' | 'drift';
  readonly differences: readonly string[];
  /** Rule by rule: what the plan has that the namespace lacks, what it has that the plan does not, and order. */
  readonly ruleDiff: readonly RuleDifference[];
  readonly footprint: ReadonlyMap<string, TableFootprint>;
}

/** One difference between a namespace's rules and the plan's, in iptables-save form. */
export interface RuleDifference {
  readonly kind: 'missing' | 'unexpected' | 'order';
  readonly table: string;
  readonly chain: string;
  /** The rule as iptables-save prints it (for 'order': the chain's expected order, joined). */
  readonly rule: string;
}

/** Compare one chain's rules: missing and unexpected as multisets; 'order' when only the order differs. */
function diffRules(table: string, chain: string, want: readonly string[], got: readonly string[]): RuleDifference[] {
  const left = [...got];
  const out: RuleDifference[] = [];
  for (const rule of want) {
    const i = left.indexOf(rule);
    if (i < 0) out.push({ kind: 'missing', table, chain, rule });
    else left.splice(i, 1);
  }
  for (const rule of left) out.push({ kind: 'unexpected', table, chain, rule });
  if (out.length === 0 && want.join('\n') !== got.join('\n')) out.push({ kind: 'order', table, chain, rule: want.join(' | ') });
  return out;
}

/**
 * Find what is ours in a dump: every ISTIO_* chain, every built-in rule that jumps to one, and
 * every built-in rule the plan itself puts there (e.g. TPROXY's mark rules, excluded interfaces),
 * or that a run of ours puts there under the other mode (`owned`: build/owned.ts).
 */
export function footprintOf(live: SavedState, expected: ReadonlyMap<Table, ExpectedTable>, owned?: ReadonlyMap<Table, ExpectedTable>): Map<string, TableFootprint> {
  const out = new Map<string, TableFootprint>();
  for (const [table, t] of live) {
    const ownChains = [...t.chains.keys()].filter(isOwnChain);
    const planned = expected.get(table as Table)?.builtin;
    const others = owned?.get(table as Table)?.builtin;
    const builtinRules: [string, string][] = [];
    for (const [chain, c] of t.chains) {
      if (!BUILTIN_CHAINS.has(chain)) continue;
      const mine = new Set([...(planned?.get(chain) ?? []), ...(others?.get(chain) ?? [])]);
      for (const spec of c.rules) if (jumpsToOwn(spec) || mine.has(spec)) builtinRules.push([chain, spec]);
    }
    if (ownChains.length > 0 || builtinRules.length > 0) out.set(table, { ownChains, builtinRules });
  }
  return out;
}

/**
 * Compare a live dump with the plan for one family; `owned`: our built-in rules under either mode
 * (build/owned.ts), recognised as ours too (found and removed when the plan does not have them).
 */
export function assess(live: SavedState, family: FamilyRules, owners: OwnerResolver, owned?: FamilyRules): Assessment {
  const expected = expectedState(family, owners);
  const footprint = footprintOf(live, expected, owned === undefined ? undefined : expectedState(owned, owners));
  const ruleDiff: RuleDifference[] = [];
  if (footprint.size === 0) {
    for (const [table, exp] of expected) {
      for (const [chain, rules] of [...exp.chains, ...exp.builtin]) ruleDiff.push(...diffRules(table, chain, rules, []));
    }
    return { status: 'absent', differences: [], ruleDiff, footprint };
  }
  const differences: string[] = [];
  for (const [table, exp] of expected) {
    const t = live.get(table);
    for (const [chain, rules] of exp.chains) {
      const got = t?.chains.get(chain);
      if (got === undefined) differences.push(`${table}: chain ${chain} is missing`);
      else if (got.rules.join('\n') !== rules.join('\n')) differences.push(`${table}: chain ${chain} differs (${got.rules.length} rules, expected ${rules.length})`);
      ruleDiff.push(...diffRules(table, chain, rules, got?.rules ?? []));
    }
    for (const chain of footprint.get(table)?.ownChains ?? []) {
      if (exp.chains.has(chain)) continue;
      differences.push(`${table}: unexpected chain ${chain}`);
      ruleDiff.push(...diffRules(table, chain, [], t?.chains.get(chain)?.rules ?? []), { kind: 'unexpected', table, chain, rule: `(chain ${chain})` });
    }
    const builtinChains = new Set([...exp.builtin.keys(), ...(footprint.get(table)?.builtinRules ?? []).map(([c]) => c)]);
    for (const chain of builtinChains) {
      const got = (footprint.get(table)?.builtinRules ?? []).filter(([c]) => c === chain).map(([, s]) => s);
      const want = exp.builtin.get(chain) ?? [];
      if (got.join('\n') !== want.join('\n')) differences.push(`${table}: our rules in ${chain} differ (${got.length} found, ${want.length} expected)`);
      ruleDiff.push(...diffRules(table, chain, want, got));
    }
  }
  for (const [table, fp] of footprint) {
    if (expected.has(table as Table)) continue;
    differences.push(`${table}: rules or chains of ours that the plan does not have`);
    for (const [chain, spec] of fp.builtinRules) ruleDiff.push({ kind: 'unexpected', table, chain, rule: spec });
    for (const chain of fp.ownChains) ruleDiff.push({ kind: 'unexpected', table, chain, rule: `(chain ${chain})` });
  }
  return { status: differences.length === 0 ? 'exact' : 'drift', differences, ruleDiff, footprint };
}

/** Lines removing our footprint from one table: deletions from built-in chains, then flush and delete our chains. */
function cleanupLines(fp: TableFootprint): string[] {
  return [
    ...fp.builtinRules.map(([chain, spec]) => (spec === '' ? `-D ${chain}` : `-D ${chain} ${spec}`)),
    ...fp.ownChains.map((c) => `-F ${c}`),
    ...fp.ownChains.map((c) => `-X ${c}`),
  ];
}

/** A `--noflush` payload removing everything of ours (cleanup-only). Empty when there is nothing. */
export function cleanupPayload(footprint: ReadonlyMap<string, TableFootprint>): string {
  return joinSections(new Map([...footprint].map(([table, fp]) => [table, cleanupLines(fp)])));
}

/**
 * A `--noflush` payload that removes our footprint and applies the plan in one transaction per
 * table, so drift is healed without a moment with half the rules.
 */
export function reconcilePayload(footprint: ReadonlyMap<string, TableFootprint>, family: FamilyRules): string {
  const sections = new Map<string, string[]>();
  for (const [table, fp] of footprint) sections.set(table, cleanupLines(fp));
  for (const [table, lines] of restoreSections(family)) sections.set(table, [...(sections.get(table) ?? []), ...lines]);
  return joinSections(sections);
}

/** A flushing payload putting the given tables back as they were in `before` (absent tables: emptied). */
export function rollbackPayload(before: SavedState, tables: Iterable<string>): string {
  const parts: string[] = [];
  for (const table of [...new Set(tables)].sort()) {
    parts.push(before.get(table)?.text ?? `*${table}\nCOMMIT\n`);
  }
  return parts.join('');
}


/** True when a table holds nothing: no rules, no own chains, only built-in chains accepting. */
export function isEmptyTable(t: SavedTable | undefined): boolean {
  if (t === undefined) return true;
  for (const [name, c] of t.chains) {
    if (!BUILTIN_CHAINS.has(name) || c.rules.length > 0 || c.policy !== 'ACCEPT') return false;
  }
  return true;
}

/* Restore payloads and restore output, as the fresh path needs them. */

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
