import { unhandled, type Cidr, type FamilyRules, type Match, type OwnerId, type Rule, type Table, type Target } from '../model/rule.js';

/** Tables in the order Istio writes them (sorted by name, as joinSections sorts them). */
const TABLE_ORDER: readonly Table[] = ['filter', 'mangle', 'nat', 'raw'];

/**
 * Every token we write is one of these characters only. Values are validated long before this
 * point; this check is the last line of defence that no value can ever split into two tokens,
 * start a comment, or carry a quote or a newline into restore text.
 */
const SAFE_TOKEN = /^[A-Za-z0-9_.:/,+@!-]+$/;

/**
 * Tokens already found safe. A payload repeats a few chain names, interfaces and addresses many
 * times; each distinct one is tested once (the entrypoint's interpreter paid ~10 us per line for
 * a whole-line pattern). Emptied when it grows large, so a long-lived library user rendering many
 * plans keeps no more than this many.
 */
const verified = new Set<string>();
const VERIFIED_MAX = 50_000;

/**
 * A token from the model's free-form strings (chain, interface, address, owner name, lists),
 * refused unless it is made of safe characters only. Literal tokens below need no check.
 */
function tok(value: string): string {
  if (!verified.has(value)) {
    if (typeof value !== 'string' || !SAFE_TOKEN.test(value)) throw new Error(`refusing to render unsafe token ${JSON.stringify(value)}`);
    if (verified.size >= VERIFIED_MAX) verified.clear();
    verified.add(value);
  }
  return value;
}

/** A number from the model as a token (a value that is not a number is checked as a token). */
function num(value: number): string {
  return typeof value === 'number' ? String(value) : tok(String(value));
}

const cidrToken = (c: Cidr): string => `${tok(c.address)}/${num(c.prefixLength)}`;
const not = (negate: boolean): string => (negate ? '! ' : '');

/* Rules are rendered as text directly (no token arrays): the entrypoint runs this in an
   interpreter, where building and flattening arrays per match cost ten times the text. */

function matchText(x: Match): string {
  switch (x.kind) {
    case 'protocol':
      return `-p ${tok(x.protocol)}`;
    case 'source':
      return `-s ${cidrToken(x.cidr)}`;
    case 'destination':
      return `${not(x.negate)}-d ${cidrToken(x.cidr)}`;
    case 'inInterface':
      return `-i ${tok(x.name)}`;
    case 'outInterface':
      return `-o ${tok(x.name)}`;
    case 'dport':
      return `${not(x.negate)}--dport ${num(x.port)}`;
    case 'dportRange':
      return `--dport ${num(x.first)}:${num(x.last)}`;
    case 'sport':
      return `--sport ${num(x.port)}`;
    case 'multiportDports':
      return `-m multiport ${not(x.negate)}--dports ${tok(x.ports.join(','))}`;
    case 'uidOwner':
      return `-m owner ${not(x.negate)}--uid-owner ${ownerToken(x.id)}`;
    case 'gidOwner':
      return `-m owner ${not(x.negate)}--gid-owner ${ownerToken(x.id)}`;
    case 'mark':
      return `-m mark ${not(x.negate)}--mark ${num(x.mark)}`;
    case 'connmark':
      return `-m connmark --mark ${num(x.mark)}`;
    case 'ctstate':
      return `-m conntrack --ctstate ${tok(x.states.join(','))}`;
    default:
      return unhandled(x);
  }
}

/** One match as written in a rule (`--dport 15090`, `! -d 127.0.0.1/32`). */
export function renderMatch(x: Match): string {
  return matchText(x);
}

const ownerToken = (id: OwnerId): string => (typeof id === 'number' ? String(id) : tok(id));

function targetText(x: Target): string {
  switch (x.kind) {
    case 'jump':
      return `-j ${tok(x.chain)}`;
    case 'return':
      return '-j RETURN';
    case 'accept':
      return '-j ACCEPT';
    case 'drop':
      return '-j DROP';
    case 'redirect':
      return `-j REDIRECT ${tok(x.spelling)} ${num(x.toPort)}`;
    case 'tproxy':
      return `-j TPROXY --tproxy-mark ${num(x.mark)}/0x${tok(x.mask.toString(16))} --on-port ${num(x.onPort)}`;
    case 'setMark':
      return `-j MARK --set-mark ${num(x.mark)}`;
    case 'connmarkSave':
      return '-j CONNMARK --save-mark';
    case 'connmarkRestore':
      return '-j CONNMARK --restore-mark';
    case 'ct':
      return `-j CT --zone ${num(x.zone)}`;
    default:
      return unhandled(x);
  }
}

/** A target as written in restore text (also how iptables-save prints the plain verdicts and CT). */
export function targetTokens(x: Target): string[] {
  return targetText(x).split(' ');
}

/** A rule's specification (matches and target) as text, tokens separated by single spaces. */
function specText(rule: Rule): string {
  let text = '';
  for (const m of rule.matches) text += `${matchText(m)} `;
  return text + targetText(rule.target);
}

/** A rule's specification (matches and target) as iptables arguments. */
export function ruleSpec(rule: Rule): string[] {
  return specText(rule).split(' ');
}

/** One rule as a restore line: `-A CHAIN ...` or `-I CHAIN N ...`. */
export function renderRule(rule: Rule): string {
  const op = rule.op.kind === 'append' ? `-A ${tok(rule.chain)}` : `-I ${tok(rule.chain)} ${num(rule.op.position)}`;
  return `${op} ${specText(rule)}`;
}

/** A rule as iptables arguments, without the table: `-A CHAIN ...` or `-I CHAIN N ...`. */
export function ruleArgs(rule: Rule): string[] {
  return renderRule(rule).split(' ');
}

/** The restore lines of one family per table (`-N` lines, then rules), without headers or COMMIT. */
export function restoreSections(family: FamilyRules): Map<Table, string[]> {
  const out = new Map<Table, string[]>();
  for (const table of TABLE_ORDER) {
    const rules = family.rules.filter((r) => r.table === table);
    if (rules.length === 0) continue;
    out.set(table, [...(family.chains.get(table) ?? []).map((c) => `-N ${tok(c)}`), ...rules.map(renderRule)]);
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
export function renderRestore(family: FamilyRules, comment?: (rule: Rule) => string): string {
  const parts: string[] = [];
  writeRestore(family, (text) => parts.push(text), comment);
  return parts.join('');
}

/** Rules per piece handed over by writeRestore. */
const RULES_PER_PIECE = 4;

/**
 * The same payload, handed to `write` in pieces as it is rendered (a table's header and chains
 * with its first rules, then every few rules, then COMMIT): a restore fed this way parses the
 * first rules, loading the extensions they use, while the rest is still being rendered. With
 * `comment`, each rule is preceded by the line it returns (a `#` comment: `--explain`).
 */
export function writeRestore(family: FamilyRules, write: (text: string) => void, comment?: (rule: Rule) => string): void {
  for (const table of TABLE_ORDER) {
    const rules = family.rules.filter((r) => r.table === table);
    if (rules.length === 0) continue;
    let piece = `*${table}\n`;
    for (const c of family.chains.get(table) ?? []) piece += `-N ${tok(c)}\n`;
    rules.forEach((rule, i) => {
      if (comment !== undefined) piece += `${comment(rule)}\n`;
      piece += `${renderRule(rule)}\n`;
      if ((i + 1) % RULES_PER_PIECE === 0) {
        write(piece);
        piece = '';
      }
    });
    write(`${piece}COMMIT\n`);
  }
}
