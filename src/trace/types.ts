/** Types of `trace`: a flow walked offline through a plan, the way netfilter would walk it. */
import type { Provenance } from '../model/rule.js';

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
  /**
   * Also list the rules met that did not match (action `nomatch`, with the match that failed):
   * `trace --verbose`.
   */
  readonly verbose?: boolean;
}

/** A netfilter hook. */
export type Hook = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';

/** What a matched rule did to the packet. */
export type TraceAction = 'jump' | 'return' | 'accept' | 'drop' | 'redirect' | 'tproxy' | 'mark' | 'connmark' | 'ct' | 'continue' | 'nomatch';

/** One rule that matched the packet (or, verbose, one that did not: action `nomatch`). */
export interface TraceStep {
  readonly hook: Hook;
  readonly table: 'raw' | 'mangle' | 'nat' | 'filter';
  readonly chain: string;
  /** 1-based position in the chain's final order (after every -A and -I of the plan). */
  readonly position: number;
  /** The rule as written in the restore payload (`-A CHAIN ...` / `-I CHAIN N ...`). */
  readonly rule: string;
  readonly action: TraceAction;
  /** `nomatch` only: the first of the rule's matches the packet failed, as written (`--dport 15090`). */
  readonly failed?: string;
  /** Why the rule exists: the options and values that made it. */
  readonly why: Provenance;
}

/** An address and port. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/**
 * Where the connection's first packet lands, as the receiving socket sees it: `local` its own
 * address (after REDIRECT the proxy's port on the pod's address or loopback; under TPROXY the
 * original destination, kept), `peer` the sender (the client's address, kept either way).
 */
export interface TraceLanding {
  readonly local: Endpoint;
  readonly peer: Endpoint;
}

/** What decided the verdict. */
export interface TraceReason {
  /**
   * The rules that decided, as written: for a capture, the jump into the capturing chain and the
   * REDIRECT or TPROXY rule; for pass, the RETURN; for drop, the jump and the DROP. Empty when no
   * rule decided: nothing in the plan captures such a flow.
   */
  readonly rules: readonly string[];
  /**
   * Why, with the options and values behind it: each deciding rule's provenance, or, when no rule
   * decided, the options that would capture such a flow and what they hold.
   */
  readonly because: readonly Provenance[];
  /** All of it in one line (flags named as --help names them, with their environment variables). */
  readonly text: string;
}

/** What became of the connection. */
export type Verdict = 'redirect' | 'tproxy' | 'pass' | 'drop';

/** A verdict a flow is expected to get (`--expect redirect`, `--expect tproxy:15006`): CI's assertion. */
export interface Expectation {
  readonly verdict: Verdict;
  /** The port it must land on (redirect, tproxy); any when absent. */
  readonly toPort?: number;
}

/** The verdict of a traced flow and the rules it met. */
export interface TraceResult {
  /**
   * redirect: NATed to a local port (toPort); tproxy: delivered to the transparent listener on
   * toPort with its original destination; drop: dropped; pass: none of these (delivered or sent
   * as addressed).
   */
  readonly verdict: Verdict;
  readonly toPort: number | null;
  /** What decided the verdict (for an ESTABLISHED packet: what decided for its connection's first packet). */
  readonly reason: TraceReason;
  /** Where the connection lands (null when dropped); for pass, the addresses it was sent or delivered with. */
  readonly landing: TraceLanding | null;
  /** The hooks the packet passed, in order (outbound to a local address: out, then back in through lo). */
  readonly hooks: readonly Hook[];
  readonly path: readonly TraceStep[];
}

/** A flow that cannot be traced (bad address, port, field): the message names the problem. */
export class TraceError extends Error {
  override readonly name = 'TraceError';
}
