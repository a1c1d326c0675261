import type { Plan } from '../model/rule.js';
import { renderIpCommands } from './ip.js';
import { renderNft } from './nft.js';
import { renderRestore } from './restore.js';

/**
 * How the plan is to be programmed: with `nft: true`, Istio's native nftables mode
 * (`--native-nftables`); with `sets` too, the nft script writes long lists as sets (`--nft-sets`).
 */
export interface DryRunOptions {
  readonly nft: boolean;
  readonly sets?: boolean;
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
}

/** The dry run as data: what `--output json` prints. */
export function toDryRunJson(plan: Plan, options: DryRunOptions = IPTABLES_MODE): DryRunJson {
  const v4 = renderRestore(plan.ipv4);
  const v6 = plan.ipv6 === null ? '' : renderRestore(plan.ipv6);
  return {
    iptablesRestore: v4 === '' ? null : v4,
    ip6tablesRestore: v6 === '' ? null : v6,
    ipCommands: renderIpCommands(plan.routes),
    notes: plan.notes,
    nftScript: options.nft ? renderNft(plan, { sets: options.sets === true }) : null,
  };
}

/** The dry run as `--output json` prints it (the nft script only in nft mode). */
export function renderJson(plan: Plan, options: DryRunOptions = IPTABLES_MODE): string {
  const { nftScript, ...rest } = toDryRunJson(plan, options);
  return `${JSON.stringify(nftScript === null ? rest : { ...rest, nftScript }, null, 2)}\n`;
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
  parts.push(
    doc.ipCommands.length === 0
      ? '# Routing: none\n'
      : `# Routing\n${doc.ipCommands.map((argv) => argv.join(' ')).join('\n')}\n`,
  );
  return parts.join('\n');
}
