import type { Plan } from '../model/rule.js';
import { renderIpCommands } from './ip.js';
import { renderRestore } from './restore.js';

/** The dry-run JSON document: the two restore payloads, the `ip` argv list and the builder's notes. */
export interface DryRunJson {
  /** IPv4 payload for `iptables-restore --noflush`, or null if there is nothing to load. */
  readonly iptablesRestore: string | null;
  /** IPv6 payload for `ip6tables-restore --noflush`, or null when IPv6 is off. */
  readonly ip6tablesRestore: string | null;
  /** Routing steps, each an argv starting with `ip`. */
  readonly ipCommands: string[][];
  readonly notes: readonly string[];
}

export function toDryRunJson(plan: Plan): DryRunJson {
  const v4 = renderRestore(plan.ipv4);
  const v6 = plan.ipv6 === null ? '' : renderRestore(plan.ipv6);
  return {
    iptablesRestore: v4 === '' ? null : v4,
    ip6tablesRestore: v6 === '' ? null : v6,
    ipCommands: renderIpCommands(plan.routes),
    notes: plan.notes,
  };
}

export function renderJson(plan: Plan): string {
  return `${JSON.stringify(toDryRunJson(plan), null, 2)}\n`;
}

/** The readable dry run: each payload under a comment naming the command it feeds, then the routes. */
export function renderText(plan: Plan): string {
  const doc = toDryRunJson(plan);
  const parts: string[] = [];
  for (const note of doc.notes) parts.push(`# note: ${note}\n`);
  parts.push(`# IPv4: iptables-restore --noflush\n${doc.iptablesRestore ?? '# (no rules)\n'}`);
  if (plan.ipv6 !== null) parts.push(`# IPv6: ip6tables-restore --noflush\n${doc.ip6tablesRestore ?? '# (no rules)\n'}`);
  else parts.push('# IPv6: disabled\n');
  parts.push(
    doc.ipCommands.length === 0
      ? '# Routing: none\n'
      : `# Routing\n${doc.ipCommands.map((argv) => argv.join(' ')).join('\n')}\n`,
  );
  return parts.join('\n');
}
