import { OPTIONS, type OptionKey } from '../config/options.js';
import type { OptionUse, Provenance } from '../model/rule.js';

/**
 * Provenance in words: which flag (short and long), environment variable and value made a rule,
 * and what it is for. Shared by `--dry-run --explain` (a `#` line above each rule), its JSON, and
 * trace's verdicts. The names come from the option table; the plan holds only option keys.
 */

/** A flag as --help names it: `-d/--istio-local-exclude-ports`, or `--redirect-dns`. */
export function flagName(key: OptionKey): string {
  const spec: { readonly long: string; readonly short?: string } = OPTIONS[key];
  return spec.short === undefined ? `--${spec.long}` : `-${spec.short}/--${spec.long}`;
}

/** Whether a value is the option's default as the table writes it. */
function isDefault(u: OptionUse): boolean {
  const d: string | boolean | undefined = (OPTIONS[u.key] as { readonly default?: string | boolean }).default;
  return d !== undefined && String(d) === u.value && u.value !== '';
}

/** A value as written on a command line: plain, or quoted when empty or unusual. */
const quoted = (value: string): string => (/^[A-Za-z0-9_.:/,*+@!-]+$/.test(value) ? value : JSON.stringify(value));

/**
 * One option value in words: `15090 from -d/--istio-local-exclude-ports or $ISTIO_LOCAL_EXCLUDE_PORTS`,
 * `15001 from -p/--envoy-port, the default`.
 */
export function describeUse(u: OptionUse): string {
  const env = OPTIONS[u.key].env;
  const from = `${flagName(u.key)}${env.map((e) => ` or $${e}`).join('')}`;
  return `${quoted(u.value)} from ${from}${isDefault(u) ? ', the default' : ''}`;
}

/** A rule's provenance in words: `purpose (value from flag or $ENV; ...)`, `purpose (always)`. */
export function describeProvenance(why: Provenance): string {
  return `${why.purpose} (${why.options.length === 0 ? 'always' : why.options.map(describeUse).join('; ')})`;
}

/**
 * The `#` line above a rule. Only printable ASCII: a comment can never end early and start a
 * rule (values were validated long before; this is the last line of defence, as SAFE_TOKEN is).
 */
export function explainComment(why: Provenance): string {
  const line = `# ${describeProvenance(why)}`;
  if (!/^[\x20-\x7e]*$/.test(line)) throw new Error(`refusing to render unsafe comment ${JSON.stringify(line)}`);
  return line;
}

/**
 * Several rules' provenance as one (nft's sets write several plan rules as one): each purpose
 * once, each option once with its values joined by commas, in order of first appearance.
 */
export function mergeProvenance(list: readonly Provenance[]): Provenance {
  if (list.length === 1) return list[0] as Provenance;
  const purposes: string[] = [];
  const values = new Map<OptionKey, string[]>();
  for (const why of list) {
    if (!purposes.includes(why.purpose)) purposes.push(why.purpose);
    for (const u of why.options) {
      const seen = values.get(u.key) ?? [];
      if (!seen.includes(u.value)) seen.push(u.value);
      values.set(u.key, seen);
    }
  }
  return { purpose: purposes.join('; '), options: [...values].map(([key, vs]) => ({ key, value: vs.join(',') })) };
}

/** An option value as the explained JSON gives it: the key, the flag, the variables, the value. */
export interface ExplainedOption {
  readonly key: OptionKey;
  /** `-d/--istio-local-exclude-ports` */
  readonly flag: string;
  readonly env: readonly string[];
  readonly value: string;
  /** The value is the option's default. */
  readonly default: boolean;
}

/** A rule's or routing step's provenance as the explained JSON gives it. */
export interface ExplainedProvenance {
  readonly purpose: string;
  /** Empty: the rule is in every plan. */
  readonly options: readonly ExplainedOption[];
}

/** A provenance for the JSON: each option with its flag and variables from the option table. */
export function explainedProvenance(why: Provenance): ExplainedProvenance {
  return {
    purpose: why.purpose,
    options: why.options.map((u) => ({ key: u.key, flag: flagName(u.key), env: OPTIONS[u.key].env, value: u.value, default: isDefault(u) })),
  };
}
