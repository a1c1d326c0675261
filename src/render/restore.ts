import { cidrText } from '../config/net.js';
import type { FamilyRules, Match, Rule, Table, Target } from '../model/rule.js';

/** Tables in the order Istio writes them (sorted by name, as joinSections sorts them). */
const TABLE_ORDER: readonly Table[] = ['filter', 'mangle', 'nat', 'raw'];

/**
 * Every token we write is one of these characters only. Values are validated long before this
 * point; this check is the last line of defence that no value can ever split into two tokens,
 * start a comment, or carry a quote or a newline into restore text.
 */
const SAFE_TOKEN = /^[A-Za-z0-9_.:/,+@!-]+$/;
/** A line of such tokens separated by single spaces (one test per rule instead of one per token). */
const SAFE_LINE = /^[A-Za-z0-9_.:/,+@!-]+(?: [A-Za-z0-9_.:/,+@!-]+)*$/;

function matchTokens(x: Match): string[] {
  const not = (negate: boolean): string[] => (negate ? ['!'] : []);
  switch (x.kind) {
    case 'protocol':
      return ['-p', x.protocol];
    case 'source':
      return ['-s', cidrText(x.cidr)];
    case 'destination':
      return [...not(x.negate), '-d', cidrText(x.cidr)];
    case 'inInterface':
      return ['-i', x.name];
    case 'outInterface':
      return ['-o', x.name];
    case 'dport':
      return [...not(x.negate), '--dport', String(x.port)];
    case 'sport':
      return ['--sport', String(x.port)];
    case 'multiportDports':
      return ['-m', 'multiport', ...not(x.negate), '--dports', x.ports.join(',')];
    case 'uidOwner':
      return ['-m', 'owner', ...not(x.negate), '--uid-owner', String(x.id)];
    case 'gidOwner':
      return ['-m', 'owner', ...not(x.negate), '--gid-owner', String(x.id)];
    case 'mark':
      return ['-m', 'mark', ...not(x.negate), '--mark', String(x.mark)];
    case 'connmark':
      return ['-m', 'connmark', '--mark', String(x.mark)];
    case 'ctstate':
      return ['-m', 'conntrack', '--ctstate', x.states.join(',')];
  }
}

/** A target as written in restore text (also how iptables-save prints the plain verdicts and CT). */
export function targetTokens(x: Target): string[] {
  switch (x.kind) {
    case 'jump':
      return ['-j', x.chain];
    case 'return':
      return ['-j', 'RETURN'];
    case 'accept':
      return ['-j', 'ACCEPT'];
    case 'drop':
      return ['-j', 'DROP'];
    case 'redirect':
      return ['-j', 'REDIRECT', x.spelling, String(x.toPort)];
    case 'tproxy':
      return ['-j', 'TPROXY', '--tproxy-mark', `${x.mark}/0x${x.mask.toString(16)}`, '--on-port', String(x.onPort)];
    case 'setMark':
      return ['-j', 'MARK', '--set-mark', String(x.mark)];
    case 'connmarkSave':
      return ['-j', 'CONNMARK', '--save-mark'];
    case 'connmarkRestore':
      return ['-j', 'CONNMARK', '--restore-mark'];
    case 'ct':
      return ['-j', 'CT', '--zone', String(x.zone)];
  }
}

/** A rule's specification (matches and target) as iptables arguments. */
export function ruleSpec(rule: Rule): string[] {
  return [...rule.matches.flatMap(matchTokens), ...targetTokens(rule.target)];
}

function unsafe(tokens: readonly string[]): Error {
  const token = tokens.find((t) => !SAFE_TOKEN.test(t)) ?? '';
  return new Error(`refusing to render unsafe token ${JSON.stringify(token)}`);
}

function opTokens(rule: Rule): string[] {
  return rule.op.kind === 'append' ? ['-A', rule.chain] : ['-I', rule.chain, String(rule.op.position)];
}

/** A rule as iptables arguments, without the table: `-A CHAIN ...` or `-I CHAIN N ...`. */
export function ruleArgs(rule: Rule): string[] {
  const tokens = [...opTokens(rule), ...ruleSpec(rule)];
  if (!SAFE_LINE.test(tokens.join(' '))) throw unsafe(tokens);
  return tokens;
}

/** One rule as a restore line. */
export function renderRule(rule: Rule): string {
  const tokens = [...opTokens(rule), ...ruleSpec(rule)];
  const line = tokens.join(' ');
  if (!SAFE_LINE.test(line)) throw unsafe(tokens);
  return line;
}

/** The restore lines of one family per table (`-N` lines, then rules), without headers or COMMIT. */
export function restoreSections(family: FamilyRules): Map<Table, string[]> {
  const out = new Map<Table, string[]>();
  for (const table of TABLE_ORDER) {
    const rules = family.rules.filter((r) => r.table === table);
    if (rules.length === 0) continue;
    out.set(table, [...(family.chains.get(table) ?? []).map((c) => `-N ${c}`), ...rules.map(renderRule)]);
  }
  return out;
}

/** Join per-table sections into restore text: `*table`, the lines, COMMIT, tables in name order. */
export function joinSections(sections: ReadonlyMap<string, readonly string[]>): string {
  const tables = [...sections.keys()].sort();
  const lines = tables.flatMap((t) => [`*${t}`, ...(sections.get(t) ?? []), 'COMMIT']);
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/**
 * The iptables-restore payload for one family: per table (in name order), `-N` for each of our
 * chains, then the rules in issue order, then COMMIT. Meant for `iptables-restore --noflush`.
 */
export function renderRestore(family: FamilyRules): string {
  const parts: string[] = [];
  writeRestore(family, (text) => parts.push(text));
  return parts.join('');
}

/** Rules per piece handed over by writeRestore. */
const RULES_PER_PIECE = 4;

/**
 * The same payload, handed to `write` in pieces as it is rendered (a table's header and chains
 * with its first rules, then every few rules, then COMMIT): a restore fed this way parses the
 * first rules, loading the extensions they use, while the rest is still being rendered.
 */
export function writeRestore(family: FamilyRules, write: (text: string) => void): void {
  for (const table of TABLE_ORDER) {
    const rules = family.rules.filter((r) => r.table === table);
    if (rules.length === 0) continue;
    let piece = `*${table}\n${(family.chains.get(table) ?? []).map((c) => `-N ${c}\n`).join('')}`;
    rules.forEach((rule, i) => {
      piece += `${renderRule(rule)}\n`;
      if ((i + 1) % RULES_PER_PIECE === 0) {
        write(piece);
        piece = '';
      }
    });
    write(`${piece}COMMIT\n`);
  }
}
