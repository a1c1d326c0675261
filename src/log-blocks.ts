import type { Config } from './config/config.js';
import { OPTION_KEYS, OPTIONS, type OptionKey, type OptionSpec } from './config/options.js';
import type { Family } from './model/rule.js';
import type { LogFields, Logger } from './log.js';
import type { Runner } from './apply/commands.js';

/*
 * The blocks an apply logs at the default level, for an operator to paste into a bug report: the
 * configuration, what was loaded (each restore's input, or the nft script) and the rules after
 * (what the namespace's own save prints once the run is done). Each block is one log record: in
 * the text layout its lines follow the level as written; with --log_as_json one JSON object whose
 * fields hold the same again, ready for a tool (docs/logs.md lists them).
 */

/** Options that describe a dry run's printout, not an apply: left out of an apply's configuration. */
const PRINTOUT_ONLY: ReadonlySet<OptionKey> = new Set(['dryRun', 'output', 'explain']);

/** A configured value as its flag takes it (lists comma-separated, "*" for all, "" for none). */
export function valueText(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return v.map(valueText).join(',');
  const o = v as Record<string, unknown>;
  if (o.kind === 'all' || o.all === true) return '*';
  if (o.kind === 'none') return '';
  if ('ports' in o) return valueText(o.ports);
  if ('groups' in o) return valueText(o.groups);
  if ('address' in o) return `${String(o.address)}/${String(o.prefixLength)}`;
  if ('first' in o) return `${String(o.first)}:${String(o.last)}`;
  if ('ipv4' in o) return valueText([...(o.ipv4 as unknown[]), ...(o.ipv6 as unknown[])]);
  throw new Error(`internal error: no text form for the configured value ${JSON.stringify(v)}`);
}

/** A value as a shell word: as it is when plain, else single-quoted. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_.:/,+@=-]*$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

/**
 * The effective configuration as flags, one per option, in the option table's order: what was
 * given, the defaults, and what was derived (the proxy uid, IPv6, the DNS servers) filled in. A
 * dry run with these flags builds the same plan. The owner-group filter is given back as the two
 * flags it was made from.
 */
export function configurationFlags(config: Config): [long: string, value: string][] {
  const out: [string, string][] = [];
  const groups = config.capture.ownerGroups;
  for (const key of OPTION_KEYS) {
    const spec: OptionSpec = OPTIONS[key];
    if (PRINTOUT_ONLY.has(key)) continue;
    let value: unknown;
    if (key === 'outboundOwnerGroups') value = groups.kind === 'include' ? groups.groups : { all: true };
    else if (key === 'outboundOwnerGroupsExclude') value = groups.kind === 'exclude' ? groups.groups : [];
    else if (spec.config !== undefined) value = (config[spec.config] as unknown as Record<string, unknown>)[key];
    else continue;
    if (spec.kind === 'strings' && Array.isArray(value)) for (const one of value) out.push([spec.long, valueText(one)]);
    else out.push([spec.long, spec.value === 'duration' ? `${valueText(value)}ms` : valueText(value)]);
  }
  return out;
}

/** Log the configuration an apply runs with (Istio's "Istio config" block, as our flags). */
export function logConfiguration(log: Logger, config: Config): void {
  if (log.enabled?.('info') === false) return;
  const flags = configurationFlags(config);
  const fields: Record<string, string> = {};
  for (const [long, value] of flags) fields[long] = long in fields ? `${fields[long]},${value}` : value;
  log.info(`configuration:\n${flags.map(([long, value]) => `--${long}=${shellWord(value)}`).join('\n')}`, { config: fields });
}

/**
 * Log what a command is given to load: a restore's input (per family) or an nft script, as it is
 * fed on stdin. `what` says why when it is not the run's own load (a rollback, an undo).
 */
export function logLoaded(log: Logger, argv: readonly string[], input: string, where: { readonly family?: Family; readonly what?: string } = {}, level: 'info' | 'debug' = 'info'): void {
  if (log.enabled?.(level) === false) return;
  const about = [where.family, where.what].filter((x) => x !== undefined).join(', ');
  const fields: LogFields = { command: argv, ...(where.family === undefined ? {} : { family: where.family }), ...(where.what === undefined ? {} : { purpose: where.what }), input };
  log[level](`input of ${argv.join(' ')}${about === '' ? '' : ` (${about})`}:\n${input.trimEnd()}`, fields);
}

/** What to read once the run is done: each family's tables through its backend's save, or nft's whole ruleset. */
export type AfterState = { readonly kind: 'iptables'; readonly save: Readonly<Record<Family, string>>; readonly families: readonly Family[] } | { readonly kind: 'nftables' };

/**
 * Log the namespace's rules after the run (Istio's "Final iptables state"), read now by the same
 * programs an operator would run: iptables-save per family (the backend's), or `nft list
 * ruleset`. Read only when the records would be written. A read that fails is said, and changes
 * nothing of the run's outcome.
 */
export async function logRulesAfter(log: Logger, runner: Runner, after: AfterState): Promise<void> {
  if (log.enabled?.('info') === false) return;
  const reads: { family?: Family; argv: string[] }[] = after.kind === 'nftables' ? [{ argv: ['nft', 'list', 'ruleset'] }] : after.families.map((family) => ({ family, argv: [after.save[family]] }));
  const results = await Promise.all(reads.map((x) => runner.run(x.argv).catch((err: unknown) => ({ exitCode: -1, stdout: '', stderr: err instanceof Error ? err.message : String(err), notFound: false }))));
  reads.forEach(({ family, argv }, i) => {
    const r = results[i] as { exitCode: number; stdout: string; stderr: string };
    const about = `${family === undefined ? '' : `${family}, `}${argv.join(' ')}`;
    if (r.exitCode !== 0) {
      log.warn(`cannot read the rules after the run (${about}): ${r.stderr.trim().split('\n')[0] || `exit ${r.exitCode}`}`, { command: argv, ...(family === undefined ? {} : { family }) });
      return;
    }
    // As printed, ending in one newline on every runtime (Node's runner drops the last one).
    const rules = r.stdout === '' || r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`;
    log.info(`rules after (${about}):\n${rules.trimEnd()}`, { command: argv, ...(family === undefined ? {} : { family }), rules });
  });
}
