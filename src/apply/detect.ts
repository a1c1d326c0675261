import { ApplyError } from '../errors.js';
import { BUILTIN_CHAINS } from '../model/rule.js';
import type { IptablesBackend } from '../config/values.js';
import { parseSave, type SavedState } from './state.js';
import type { Runner } from './commands.js';
import type { Fact } from '../platform/platform.js';

/** The iptables binaries of one backend, per family. */
export interface Backend {
  readonly name: IptablesBackend | 'default';
  readonly restore: { readonly ipv4: string; readonly ipv6: string };
  readonly save: { readonly ipv4: string; readonly ipv6: string };
}

export function backendBinaries(name: IptablesBackend | 'default'): Backend {
  const suffix = name === 'default' ? '' : `-${name}`;
  return {
    name,
    restore: { ipv4: `iptables${suffix}-restore`, ipv6: `ip6tables${suffix}-restore` },
    save: { ipv4: `iptables${suffix}-save`, ipv6: `ip6tables${suffix}-save` },
  };
}

/**
 * The backend without running a program, where that is certain: a forced one, or nft when the
 * target namespace has no legacy tables at all (its /proc/net/ip_tables_names and
 * ip6_tables_names list them once they exist; `legacy` says whether any does there, undefined when
 * that could not be read). Otherwise undefined: the backend is read with iptables-save.
 */
export function quickBackend(
  forceIptablesBinary: IptablesBackend | undefined,
  legacy: Fact<boolean | undefined> | undefined,
): { backend: Backend; evidence: string } | undefined {
  if (forceIptablesBinary !== undefined) return { backend: backendBinaries(forceIptablesBinary), evidence: 'forced by --force-iptables-binary' };
  if (legacy === undefined || legacy.value !== false) return undefined;
  return { backend: backendBinaries('nft'), evidence: `no legacy tables (${legacy.source}); nft preferred` };
}

export interface Detection {
  readonly backend: Backend;
  /** Why this backend: what was found. */
  readonly evidence: string;
  /** The IPv4 dump read while detecting (reused as the state before applying). */
  readonly ipv4State: SavedState;
}

function footprintSize(state: SavedState): number {
  let n = 0;
  for (const t of state.values()) {
    for (const [name, c] of t.chains) n += c.rules.length + (BUILTIN_CHAINS.has(name) ? 0 : 1);
  }
  return n;
}

/**
 * Pick the backend as Istio does: the one that already holds rules wins (a namespace must not
 * mix them: the kernel would run both); otherwise nft; otherwise whatever `iptables` is.
 */
export async function detectBackend(runner: Runner, forceIptablesBinary: IptablesBackend | undefined): Promise<Detection> {
  if (forceIptablesBinary !== undefined) {
    const backend = backendBinaries(forceIptablesBinary);
    const r = await runner.run([backend.save.ipv4]);
    if (r.notFound) throw new ApplyError(`${backend.save.ipv4} not found (forced by --force-iptables-binary; install iptables)`, [backend.save.ipv4], r.stderr);
    if (r.exitCode !== 0) throw new ApplyError(`${backend.save.ipv4} failed (exit ${r.exitCode}): ${r.stderr.trim()}`, [backend.save.ipv4], r.stderr);
    return { backend, evidence: 'forced by --force-iptables-binary', ipv4State: parseSave(r.stdout) };
  }
  const [legacy, nft] = await Promise.all([runner.run(['iptables-legacy-save']), runner.run(['iptables-nft-save'])]);
  // iptables-nft-save installed but failing (a file-descriptor limit, no memory, a signal) is an
  // error: taken for "no nft" it would pick legacy beside nft rules. (A failing legacy save is
  // passed over, as Istio does: without the capability a non-root run cannot read the legacy
  // tables' names, and the kernel may have no legacy tables at all.)
  if (nft.exitCode !== 0 && !nft.notFound) throw new ApplyError(`iptables-nft-save failed (exit ${nft.exitCode}): ${nft.stderr.trim()}`, ['iptables-nft-save'], nft.stderr);
  const legacyState = legacy.exitCode === 0 ? parseSave(legacy.stdout) : undefined;
  const nftState = nft.exitCode === 0 ? parseSave(nft.stdout) : undefined;
  const legacyRules = legacyState ? footprintSize(legacyState) : 0;
  const nftRules = nftState ? footprintSize(nftState) : 0;
  if (legacyState && legacyRules > 0 && legacyRules >= nftRules) {
    return { backend: backendBinaries('legacy'), evidence: `legacy tables hold ${legacyRules} rules/chains (nft: ${nftRules})`, ipv4State: legacyState };
  }
  if (nftState) {
    return {
      backend: backendBinaries('nft'),
      evidence: nftRules > 0 ? `nft tables hold ${nftRules} rules/chains (legacy: ${legacyRules})` : 'no rules in either backend; nft preferred',
      ipv4State: nftState,
    };
  }
  if (legacyState) return { backend: backendBinaries('legacy'), evidence: 'iptables-nft-save unavailable; legacy used', ipv4State: legacyState };
  const plain = backendBinaries('default');
  const r = await runner.run([plain.save.ipv4]);
  if (r.notFound) {
    throw new ApplyError('no iptables found: none of iptables-nft-save, iptables-legacy-save, iptables-save could run (install iptables)', [plain.save.ipv4], r.stderr);
  }
  if (r.exitCode !== 0) throw new ApplyError(`${plain.save.ipv4} failed (exit ${r.exitCode}): ${r.stderr.trim()}`, [plain.save.ipv4], r.stderr);
  return { backend: plain, evidence: 'only plain iptables available', ipv4State: parseSave(r.stdout) };
}

/**
 * With --force-iptables-binary: what the other backend holds in the namespace (rules and our or
 * anyone's chains, per family), said as a warning, since the kernel runs both backends' rules and
 * a forced run neither sees nor removes the other's. Undefined when it holds nothing, or cannot be
 * read (not installed: then it holds nothing either).
 */
export async function otherBackendWarning(runner: Runner, forced: IptablesBackend): Promise<string | undefined> {
  const other = backendBinaries(forced === 'legacy' ? 'nft' : 'legacy');
  const families = ['ipv4', 'ipv6'] as const;
  const reads = await Promise.all(families.map((f) => runner.run([other.save[f]])));
  const counts = reads.map((r) => (r.exitCode === 0 ? footprintSize(parseSave(r.stdout)) : 0));
  if (counts.every((n) => n === 0)) return undefined;
  const each = families.map((f, i) => `${other.save[f]}: ${counts[i] ?? 0}`).join(', ');
  return (
    `--force-iptables-binary=${forced}, but the ${other.name} backend already holds rules in this namespace (rules and chains: ${each}): ` +
    `the kernel runs both backends' rules, and this run neither sees nor removes the ${other.name} ones`
  );
}
