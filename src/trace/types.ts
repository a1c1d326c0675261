/** Types of `trace`: a flow walked offline through a plan, the way netfilter would walk it. */

/** Conntrack state of the traced packet. NEW: a connection's first packet (the default). */
export type FlowState = 'NEW' | 'ESTABLISHED' | 'INVALID';

/** One packet of a connection, seen from the pod. */
export interface Flow {
  readonly direction: 'inbound' | 'outbound';
  readonly protocol: 'tcp' | 'udp';
  readonly src: string;
  readonly sport: number;
  readonly dst: string;
  readonly dport: number;
  /** Outbound: the sending process's uid and (primary) gid. */
  readonly uid?: number;
  readonly gid?: number;
  /** Inbound: the interface the packet arrives on (default eth0). */
  readonly inInterface?: string;
  /** Outbound: the interface the route picks (default lo for a local destination, else eth0). */
  readonly outInterface?: string;
  /** The packet's mark (outbound: the socket's SO_MARK). Default 0. */
  readonly mark?: number;
  /** Default NEW. ESTABLISHED traces a later packet of the connection (NAT was decided by its first). */
  readonly state?: FlowState;
}

/** What `traceFlow` knows about the pod beyond the plan. */
export interface TraceOptions {
  /**
   * The pod's own addresses. A destination among them (or in a loopback range, or ::6) is local:
   * outbound traffic to it leaves through lo. The first of a family is also the address an inbound
   * REDIRECT rewrites the destination to.
   */
  readonly localAddresses?: readonly string[];
  /**
   * Supplementary gids of the sending process. The kernel's owner match reads them only with
   * `--suppl-groups`, which no rule of the model carries, so today they never change a verdict.
   */
  readonly groups?: readonly number[];
  /** Resolves an owner name in the plan (`--uid-owner istio-proxy`); without it a name matches no id. */
  readonly resolveOwner?: (name: string, kind: 'uid' | 'gid') => number | undefined;
}

/** A netfilter hook. */
export type Hook = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';

/** What a matched rule did to the packet. */
export type TraceAction = 'jump' | 'return' | 'accept' | 'drop' | 'redirect' | 'tproxy' | 'mark' | 'connmark' | 'ct' | 'continue';

/** One rule that matched the packet. */
export interface TraceStep {
  readonly hook: Hook;
  readonly table: 'raw' | 'mangle' | 'nat' | 'filter';
  readonly chain: string;
  /** 1-based position in the chain's final order (after every -A and -I of the plan). */
  readonly position: number;
  /** The rule as written in the restore payload (`-A CHAIN ...` / `-I CHAIN N ...`). */
  readonly rule: string;
  readonly action: TraceAction;
}

/** What became of the connection. */
export type Verdict = 'redirect' | 'tproxy' | 'pass' | 'drop';

/** The verdict of a traced flow and the rules it met. */
export interface TraceResult {
  /**
   * redirect: NATed to a local port (toPort); tproxy: delivered to the transparent listener on
   * toPort with its original destination; drop: dropped; pass: none of these (delivered or sent
   * as addressed).
   */
  readonly verdict: Verdict;
  readonly toPort: number | null;
  readonly path: readonly TraceStep[];
}

/** A flow that cannot be traced (bad address, port, field): the message names the problem. */
export class TraceError extends Error {
  override readonly name = 'TraceError';
}
