import type { Family, Plan, Provenance, Rule, Table } from '../model/rule.js';
import { explainComment, explainedProvenance, mergeProvenance, type ExplainedProvenance } from './explain.js';
import { renderIpCommands, routeArgs } from './ip.js';
import { renderNft } from './nft/index.js';
import { renderRestore, renderRule } from './restore.js';

/**
 * How the plan is to be programmed: with `nft: true`, Istio's native nftables mode
 * (`--native-nftables`); with `sets` too, the nft script writes long lists as sets (`--nft-sets`).
 */
export interface DryRunOptions {
  readonly nft: boolean;
  readonly sets?: boolean;
  /**
   * `--explain`: a `#` line above each rule and routing step naming the flag, environment
   * variable and value that made it and what it is for (payloads stay loadable: iptables-restore
   * and nft skip comments); the JSON also gets `explain`.
   */
  readonly explain?: boolean;
}

const IPTABLES_MODE: DryRunOptions = { nft: false };

/**
 * The dry-run JSON document: the two restore payloads, the `ip` argv list and the builder's notes;
 * in nft mode also the nft script (the restore payloads stay, for comparison and for tools that
 * read them).
 */
export interface DryRunJson {
  /** IPv4 payload for `iptables-restore --noflush`, or null if there is nothing to load. */
  readonly iptablesRestore: string | null;
  /** IPv6 payload for `ip6tables-restore --noflush`, or null when IPv6 is off. */
  readonly ip6tablesRestore: string | null;
  /** Routing steps, each an argv starting with `ip`. */
  readonly ipCommands: string[][];
  readonly notes: readonly string[];
  /**
   * nft mode only: the script for `nft -f -` (Istio's inet tables istio-proxy-nat/-mangle/-raw);
   * null otherwise. Left out of the JSON text when null, so iptables-mode output is unchanged.
   */
  readonly nftScript: string | null;
  /** `--explain` only (left out of the JSON text otherwise): each rule and routing step with its provenance. */
  readonly explain?: DryRunExplanation;
}

/** Each rule of the plan (in issue order) and each routing step, with why it exists. */
export interface DryRunExplanation {
  readonly rules: readonly (ExplainedProvenance & { readonly family: Family | 'both'; readonly table: Table; readonly chain: string; readonly rule: string })[];
  readonly routes: readonly (ExplainedProvenance & { readonly argv: readonly string[] })[];
}

const ruleComment = (rule: Rule): string => explainComment(rule.why);
const setComment = (rules: readonly Rule[]): string => explainComment(mergeProvenance(rules.map((r) => r.why)));

/** The dry run as data: what `--output json` prints. */
export function toDryRunJson(plan: Plan, options: DryRunOptions = IPTABLES_MODE): DryRunJson {
  const explain = options.explain === true;
  const comment = explain ? ruleComment : undefined;
  const v4 = renderRestore(plan.ipv4, comment);
  const v6 = plan.ipv6 === null ? '' : renderRestore(plan.ipv6, comment);
  const ipCommands = renderIpCommands(plan.routes);
  const doc: DryRunJson = {
    iptablesRestore: v4 === '' ? null : v4,
    ip6tablesRestore: v6 === '' ? null : v6,
    ipCommands,
    notes: plan.notes,
    nftScript: options.nft ? renderNft(plan, { sets: options.sets === true, ...(explain ? { comment: setComment } : {}) }) : null,
  };
  if (!explain) return doc;
  return {
    ...doc,
    explain: {
      rules: plan.rules.map((r) => ({ family: r.family, table: r.table, chain: r.chain, rule: renderRule(r), ...explainedProvenance(r.why) })),
      routes: plan.routes.map((step, i) => ({ argv: ipCommands[i] ?? [], ...explainedProvenance(step.why) })),
    },
  };
}

/** The dry run as `--output json` prints it (the nft script only in nft mode, `explain` only with --explain). */
export function renderJson(plan: Plan, options: DryRunOptions = IPTABLES_MODE): string {
  const { nftScript, explain, ...rest } = toDryRunJson(plan, options);
  const doc = { ...rest, ...(nftScript === null ? {} : { nftScript }), ...(explain === undefined ? {} : { explain }) };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * The readable dry run: each payload under a comment naming the command it feeds (in nft mode,
 * the nft script last, under `# nft -f -`), then the routes.
 */
export function renderText(plan: Plan, options: DryRunOptions = IPTABLES_MODE): string {
  const doc = toDryRunJson(plan, options);
  const parts: string[] = [];
  for (const note of doc.notes) parts.push(`# note: ${note}\n`);
  parts.push(`# IPv4: iptables-restore --noflush\n${doc.iptablesRestore ?? '# (no rules)\n'}`);
  if (plan.ipv6 !== null) parts.push(`# IPv6: ip6tables-restore --noflush\n${doc.ip6tablesRestore ?? '# (no rules)\n'}`);
  else parts.push('# IPv6: disabled\n');
  if (doc.nftScript !== null) parts.push(`# nft -f -\n${doc.nftScript === '' ? '# (no rules)\n' : doc.nftScript}`);
  const routeComment = (why: Provenance): string => (options.explain === true ? `${explainComment(why)}\n` : '');
  parts.push(
    doc.ipCommands.length === 0
      ? '# Routing: none\n'
      : `# Routing\n${plan.routes.map((step) => `${routeComment(step.why)}${routeArgs(step).join(' ')}`).join('\n')}\n`,
  );
  return parts.join('\n');
}
