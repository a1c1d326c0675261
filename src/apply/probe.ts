/**
 * The validation probe's definition, shared by both runtimes' implementations (apply/validate.ts
 * on Node, platform/quickjs/validate.ts in the entrypoint) and by the subcommand that runs it
 * inside another network namespace.
 *
 * The probe, as Istio's: listen on loopback at the proxy's outbound and inbound ports, then, as
 * the proxy's uid/gid and from 127.0.0.1 (::1), connect to 127.0.0.6 (::6) at the probe port,
 * where nothing of ours listens. Only the capture rules can bring that connection to one of our
 * listeners (the proxy uid's traffic to a non-localhost address on lo is sent to the inbound port).
 *
 * The verdict is our listeners', never the client's: the probe passes only when one of our
 * listeners accepted a connection whose far end is the client's own socket (the address and port
 * the client connected from) and received the client's token on it. Whatever answers the client
 * elsewhere counts for nothing: a process in the pod listening at 127.0.0.6:15002 that echoes the
 * token back, or one that relays it to our listener from a socket of its own (Istio's validator
 * asks its listener too: it passes when a connection arrives there whose original destination,
 * before the redirect, was the probe port). The client only connects, sends the token and says
 * from which local port it connected.
 *
 * The client's source is set because the kernel would otherwise pick ::6 itself for IPv6 (the
 * address on lo that equals the destination), and the rules let connections from ::6 pass
 * untouched (they are the proxy's inbound passthrough), so an IPv6 probe would fail with the
 * rules in place. For IPv4 the kernel picks 127.0.0.1 anyway.
 */
import { ConfigError } from '../errors.js';

export interface ProbeOptions {
  readonly family: 'ipv4' | 'ipv6';
  readonly listenPorts: readonly number[];
  readonly probePort: number;
  readonly timeoutMs: number;
  /** uid/gid the client runs as (the proxy's), so its traffic is what the rules capture. */
  readonly uid: number;
  readonly gid: number;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly detail: string;
}

/**
 * The hidden subcommand that runs the probe, and only the probe, with every parameter given on
 * its command line (`__probe family=ipv4 listen=15001,15006 port=15002 timeout=5000 uid=1337
 * gid=1337`): how a run with --network-namespace probes inside that namespace. It reads no flag,
 * no environment variable and no namespace of its own, so it runs exactly once.
 */
export const PROBE_COMMAND = '__probe';

export function probeArgs(o: ProbeOptions): string[] {
  return [`family=${o.family}`, `listen=${o.listenPorts.join(',')}`, `port=${o.probePort}`, `timeout=${o.timeoutMs}`, `uid=${o.uid}`, `gid=${o.gid}`];
}

/** The subcommand's arguments back into options; anything else is an error naming it. */
export function parseProbeArgs(args: readonly string[]): ProbeOptions {
  // Here, not at module level: the entrypoint would build it at every start-up.
  const NUMBER = /^(0|[1-9][0-9]{0,9})$/;
  const given = new Map<string, string>();
  for (const a of args) {
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : '';
    if (!['family', 'listen', 'port', 'timeout', 'uid', 'gid'].includes(name) || given.has(name)) {
      throw new ConfigError(undefined, undefined, `${PROBE_COMMAND}: unexpected argument ${JSON.stringify(a)}`);
    }
    given.set(name, a.slice(eq + 1));
  }
  const num = (name: string, max: number): number => {
    const v = given.get(name) ?? '';
    if (!NUMBER.test(v) || Number(v) > max) throw new ConfigError(undefined, undefined, `${PROBE_COMMAND}: ${name}=${JSON.stringify(v)}: expected a number 0-${max}`);
    return Number(v);
  };
  const family = given.get('family');
  if (family !== 'ipv4' && family !== 'ipv6') throw new ConfigError(undefined, undefined, `${PROBE_COMMAND}: family must be ipv4 or ipv6`);
  const listen = (given.get('listen') ?? '').split(',').map((p) => {
    if (!NUMBER.test(p) || Number(p) < 1 || Number(p) > 65535) throw new ConfigError(undefined, undefined, `${PROBE_COMMAND}: listen=${JSON.stringify(given.get('listen'))}: expected ports 1-65535`);
    return Number(p);
  });
  return { family, listenPorts: listen, probePort: num('port', 65535), timeoutMs: num('timeout', 2 ** 31 - 1), uid: num('uid', 2 ** 32 - 2), gid: num('gid', 2 ** 32 - 2) };
}

/** Where the listeners listen and where the client connects. */
export function probeAddresses(family: 'ipv4' | 'ipv6'): { listenHost: string; target: string } {
  return family === 'ipv4' ? { listenHost: '127.0.0.1', target: '127.0.0.6' } : { listenHost: '::1', target: '::6' };
}

/** The client's source address for a target: loopback of the target's family (see the top). */
export function probeSource(target: string): string {
  return probeAddresses(target.includes(':') ? 'ipv6' : 'ipv4').listenHost;
}

/** The peer of a connection: address and port. */
const endpoint = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * The probe's verdict, kept the same way by both runtimes: what the client reported (the local
 * ports of its connections that were established, whatever answered them; the errors of those
 * that were not), and what our listeners received (connections that carried the token, by
 * their far end). Passed once a connection from one of the client's own sockets brought the
 * token to one of our listeners.
 */
export class ProbeJudge {
  /** Local ports of the client's established connections. */
  private readonly clientPorts = new Set<number>();
  /** Connections that brought the token to a listener of ours: their far end, and which listener. */
  private readonly carried: { address: string; port: number; listener: number }[] = [];
  private lastError: string | undefined;
  /** The connection that passed the probe, once there is one. */
  private proof: { port: number; listener: number } | undefined;
  /** Called once, when the probe passes. */
  onPassed: () => void = () => {};

  constructor(
    readonly options: ProbeOptions,
    /** A random token, unknown to anyone but the client and us. */
    readonly token: string,
  ) {}

  /** The client's connection from local port `port` was established (to whatever answered). */
  clientConnected(port: number): void {
    this.clientPorts.add(port);
    this.decide();
  }

  /** A client connection failed before it was established (ECONNREFUSED, ...). */
  clientFailed(code: string): void {
    this.lastError = code;
  }

  /** A listener of ours (on port `listener`) received the token on a connection from address:port. */
  tokenReceived(address: string, port: number, listener: number): void {
    // Kept for the verdict (the client may report its port later) and the message; a flood is cut short.
    if (this.carried.length < 256) this.carried.push({ address, port, listener });
    this.decide();
  }

  /** Whether the probe passed: the token came to our listener on the client's own connection. */
  get passed(): boolean {
    return this.proof !== undefined;
  }

  private decide(): void {
    if (this.proof !== undefined) return;
    const source = probeAddresses(this.options.family).listenHost;
    const c = this.carried.find((x) => x.address === source && this.clientPorts.has(x.port));
    if (c === undefined) return;
    this.proof = { port: c.port, listener: c.listener };
    this.onPassed();
  }

  /**
   * The result, worded the same by both runtimes: `listening`, the ports our listeners took;
   * `clientError`, why the client could not start or ended before the verdict.
   */
  result(listening: readonly number[], clientError?: string): ProbeResult {
    const o = this.options;
    const { listenHost, target } = probeAddresses(o.family);
    const to = `${target}:${o.probePort}`;
    if (listening.length === 0) return { ok: false, detail: `could not listen on ${listenHost} ports ${o.listenPorts.join(', ')}` };
    if (this.proof !== undefined) {
      return {
        ok: true,
        detail: `${to} reached our listener on ${listenHost} (${listening.join(', ')}): port ${this.proof.listener} received the token from the client's socket ${endpoint(listenHost, this.proof.port)}`,
      };
    }
    if (clientError !== undefined) return { ok: false, detail: `the probe client (uid ${o.uid}, gid ${o.gid}) failed: ${clientError}` };
    const why: string[] = [];
    const others = this.carried.filter((x) => !(x.address === listenHost && this.clientPorts.has(x.port)));
    if (others.length > 0) {
      why.push(`the token came to port ${others[0]?.listener} from ${endpoint(others[0]?.address ?? '', others[0]?.port ?? 0)}, not from the client's own socket (relayed?), which does not count`);
    }
    if (this.clientPorts.size > 0) {
      const n = this.clientPorts.size;
      why.push(`the client connected ${n === 1 ? 'once' : `${n} times`}, never to our listener: something else accepts connections at ${to}`);
    } else if (this.lastError !== undefined) {
      why.push(`the client's connections failed (${this.lastError})`);
    }
    return { ok: false, detail: `${to} did not reach ${listenHost} ports ${listening.join(', ')} within ${o.timeoutMs} ms${why.length > 0 ? `: ${why.join('; ')}` : ''}` };
  }
}
