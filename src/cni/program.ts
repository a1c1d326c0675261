import { apply, applyOptionsFrom, diff } from '../api/namespace.js';
import { buildPlan } from '../build/plan.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { CNI_CODE, CniError } from './spec.js';

/*
 * The plugin's one way into a pod's namespace: the library's apply and diff, the one door
 * (src/api/namespace.ts: the namespace opened and checked once, the backend detected and the run
 * lock taken in the pod's namespace, the run's deadline).
 */

/** Program the pod's namespace (all or nothing); what happened, in a few words. */
export async function programNamespace(config: Config, log: Logger): Promise<string> {
  const plan = buildPlan(config.capture);
  for (const note of plan.notes) log.warn(note);
  const r = await apply(plan, { ...applyOptionsFrom(config.run), logger: log });
  if (r.kind === 'nftables') return `nftables ${r.outcome}${r.routesAdded.length > 0 ? `, ${r.routesAdded.length} routing steps added` : ''}`;
  const families = Object.entries(r.families).map(([f, o]) => `${f} ${o}`).join(', ');
  return `iptables (${r.backend}) ${families}${r.routesAdded.length > 0 ? `, ${r.routesAdded.length} routing steps added` : ''}`;
}

/** What differs between the pod's namespace and the plan ('' when in sync). */
export async function checkNamespace(config: Config, _log: Logger): Promise<string> {
  if (config.run.nativeNftables) {
    throw new CniError(CNI_CODE.unsupportedField, 'CHECK compares iptables rules; with native_nftables it is not implemented (the namespace was not compared)');
  }
  const plan = buildPlan(config.capture);
  const r = await diff(plan, { networkNamespace: config.run.networkNamespace, forceIptablesBinary: config.run.forceIptablesBinary });
  if (r.inSync) return '';
  const { renderDiff } = await import('../render/diff.js');
  return renderDiff(r);
}
