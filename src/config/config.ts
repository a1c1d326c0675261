import type { OwnerId } from '../model/rule.js';
import type { OptionSection } from './options.js';

/** Which outbound traffic is captured by the owner group of the sending process. */
export type OwnerGroupFilter =
  /** Capture all groups except these (an empty list captures every group). */
  | { readonly kind: 'exclude'; readonly groups: readonly OwnerId[] }
  /** Capture only these groups. */
  | { readonly kind: 'include'; readonly groups: readonly OwnerId[] };

/**
 * The validated configuration the plan is built from: every option of the table marked
 * `config: 'capture'`, under its key, with its schema's type (see OPTIONS for what each means),
 * and the owner-group filter that --outbound-owner-groups and --outbound-owner-groups-exclude
 * make together.
 */
export interface CaptureConfig extends OptionSection<'capture'> {
  readonly ownerGroups: OwnerGroupFilter;
  /**
   * Whether lo of the target has IPv6 (its disable_ipv6 is not 1; read in the target when IPv6 is
   * on). Absent: taken as on. Where it is off, the plan puts nothing IPv6 on lo.
   */
  readonly loopbackIpv6?: boolean;
}

/** How and where the plan is run: every option of the table marked `config: 'run'`, under its key. */
export interface RunConfig extends OptionSection<'run'> {}

/** A validated configuration: what to capture (the plan's input) and how to run. */
export interface Config {
  readonly capture: CaptureConfig;
  readonly run: RunConfig;
}
