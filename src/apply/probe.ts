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
 * listeners received the client's token on a connection that came through the redirect from the
 * client's own socket: its far end is the address and port the client connected from, and the
 * kernel's socket table (/proc/net/tcp, tcp6) lists no socket connected from there to our
 * listener directly (the client's own socket is listed as connected to 127.0.0.6:15002, where it
 * was sent). Whatever answers the client elsewhere counts for nothing: a process in the pod
 * listening at 127.0.0.6:15002 that echoes the token back, or one that relays it to our listener
 * from a socket of its own, even one bound to the client's port (Node binds the client's socket
 * with SO_REUSEADDR, so another process can bind that port too). Istio's validator also asks its
 * listener: it passes when a connection arrives there whose original destination, before the
 * redirect, was the probe port. The client only connects, sends the token and says from which
 * local port it connected.
 *
 * The client's source is set because the kernel would otherwise pick ::6 itself for IPv6 (the
 * address on lo that equals the destination), and the rules let connections from ::6 pass
 * untouched (they are the proxy's inbound passthrough), so an IPv6 probe would fail with the
 * rules in place. For IPv4 the kernel picks 127.0.0.1 anyway.
 */
import { ConfigError } from '../errors.js';
import { parseIpv4, parseIpv6 } from '../config/net.js';

/** What the validation probe does: the family, the proxy's ports it listens on, where it connects, as whom, and for how long. */
export interface ProbeOptions {
  readonly family: 'ipv4' | 'ipv6';
  readonly listenPorts: readonly number[];
  readonly probePort: number;
  readonly timeoutMs: number;
  /** uid/gid the client runs as (the proxy's), so its traffic is what the rules capture. */
  readonly uid: number;
  readonly gid: number;
}

/** Whether the probe's connection reached our listener, and what happened, in words. */
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

/** The kernel's table of TCP sockets of a family, where a listener reads it (its own namespace's). */
export function socketTable(family: 'ipv4' | 'ipv6'): string {
  return family === 'ipv4' ? '/proc/net/tcp' : '/proc/net/tcp6';
}

/**
 * An address as /proc/net/tcp{,6} prints it, in both byte orders: the kernel prints each 32-bit
 * word of the address in the host's order. Checking both can only find more, so a rule that
 * refuses on a match stays sound on any host.
 */
function tableAddresses(address: string): string[] {
  const v4 = parseIpv4(address);
  const groups = v4 === null ? parseIpv6(address) : null;
  const bytes = v4 ?? (groups ?? []).flatMap((g) => [g >> 8, g & 0xff]);
  if (bytes.length === 0) return [];
  const hex = (b: readonly number[]) => b.map((x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
  const words = Array.from({ length: bytes.length / 4 }, (_, k) => bytes.slice(4 * k, 4 * k + 4));
  return [hex(bytes), hex(words.flatMap((w) => [...w].reverse()))];
}

/**
 * Whether the kernel's socket table (the text of /proc/net/tcp or tcp6) lists a socket connected
 * from `from` straight to `to`: a connection made to our listener directly (a relay's), where a
 * redirected one is listed as connected to the address it was sent to.
 */
export function connectedDirectly(table: string, from: { address: string; port: number }, to: { address: string; port: number }): boolean {
  const ends = (e: { address: string; port: number }) => tableAddresses(e.address).map((a) => `${a}:${e.port.toString(16).padStart(4, '0').toUpperCase()}`);
  const local = new Set(ends(from));
  const remote = new Set(ends(to));
  return table.split('\n').some((line) => {
    const [, l = '', r = ''] = line.trim().split(/\s+/);
    return local.has(l.toUpperCase()) && remote.has(r.toUpperCase());
  });
}

/** The peer of a connection: address and port. */
const endpoint = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * The probe's verdict, kept the same way by both runtimes: what the client reported (the local
 * ports of its connections that were established, whatever answered them; the errors of those
 * that were not), and what our listeners received (connections that carried the token, by their
 * far end, with the kernel's socket table as read then). Passed once the token came to one of
 * our listeners through the redirect from one of the client's own sockets.
 */
export class ProbeJudge {
  /** Local ports of the client's established connections. */
  private readonly clientPorts = new Set<number>();
  /** Connections that brought the token to a listener of ours: their far end, which listener, and how they came. */
  private readonly carried: { address: string; port: number; listener: number; came: 'redirected' | 'directly' | 'unknown' }[] = [];
  private tableError: string | undefined;
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

  /**
   * A listener of ours (on port `listener`) received the token on a connection from
   * address:port; `table`, the kernel's socket table read then (socketTable), or the error that
   * kept it from being read (then the connection cannot count: fail closed).
   */
  tokenReceived(address: string, port: number, listener: number, table: string | Error): void {
    const here = { address: probeAddresses(this.options.family).listenHost, port: listener };
    if (table instanceof Error) this.tableError = table.message;
    const came = table instanceof Error ? 'unknown' : connectedDirectly(table, { address, port }, here) ? 'directly' : 'redirected';
    // Kept for the verdict (the client may report its port later) and the message; a flood is cut short.
    if (this.carried.length < 256) this.carried.push({ address, port, listener, came });
    this.decide();
  }

  /** Whether the probe passed: the token came to our listener on the client's own connection. */
  get passed(): boolean {
    return this.proof !== undefined;
  }

  private decide(): void {
    if (this.proof !== undefined) return;
    const source = probeAddresses(this.options.family).listenHost;
    const c = this.carried.find((x) => x.came === 'redirected' && x.address === source && this.clientPorts.has(x.port));
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
    const ours = (x: { address: string; port: number }) => x.address === listenHost && this.clientPorts.has(x.port);
    const first = this.carried.find((x) => x.came !== 'redirected' || !ours(x));
    if (first !== undefined) {
      const how =
        first.came === 'directly'
          ? 'on a connection made to it directly, not through the redirect (relayed?)'
          : first.came === 'unknown'
            ? `with no way to tell whether through the redirect (${socketTable(o.family)}: ${this.tableError ?? 'unreadable'})`
            : "not from the client's own socket (relayed?)";
      why.push(`the token came to port ${first.listener} from ${endpoint(first.address, first.port)} ${how}, which does not count`);
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

/** Exit code of the probe subcommand when the probe fails, as Istio's. */
export const PROBE_FAILED = 126;

/**
 * Run the probe inside another namespace: this program's probe subcommand there (`self`, run by
 * the runner that runs commands in that namespace), given every parameter it needs; it reads no
 * flag, environment variable or namespace itself.
 */
export async function probeElsewhere(
  runner: { run(argv: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> },
  self: readonly string[],
  probe: ProbeOptions,
  log: { debug(msg: string): void },
): Promise<ProbeResult> {
  const r = await runner.run([...self, PROBE_COMMAND, ...probeArgs(probe)]);
  if (r.stderr.trim() !== '') log.debug(r.stderr.trim());
  const detail = r.stdout.trim();
  if (r.exitCode === 0 || r.exitCode === PROBE_FAILED) return { ok: r.exitCode === 0, detail: detail || `probe in the namespace exited ${r.exitCode}` };
  return { ok: false, detail: `probe in the namespace exited ${r.exitCode}${r.stderr.trim() === '' ? '' : `: ${r.stderr.trim()}`}` };
}
