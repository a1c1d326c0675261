/**
 * The validation probe's definition, shared by both runtimes' implementations (apply/validate.ts
 * on Node, platform/quickjs/validate.ts in the entrypoint) and by the subcommand that runs it
 * inside another network namespace.
 *
 * The probe, as Istio's: listen on loopback at the proxy's outbound and inbound ports, then, as
 * the proxy's uid/gid and from 127.0.0.1 (::1), connect to 127.0.0.6 (::6) at the probe port,
 * where nothing listens. Only the capture rules can bring that connection to one of our listeners
 * (the proxy uid's traffic to a non-localhost address on lo is sent to the inbound port). The
 * client sends a random token and the listener echoes it back, proving the connection reached us.
 *
 * The client's source is set because the kernel would otherwise pick ::6 itself for IPv6 (the
 * address on lo that equals the destination), and the rules let connections from ::6 pass
 * untouched (they are the proxy's inbound passthrough), so an IPv6 probe would fail with the
 * rules in place. For IPv4 the kernel picks 127.0.0.1 anyway.
 */
import { ConfigError } from '../errors.js';

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

/** The result, worded the same by both runtimes. */
export function probeResult(o: ProbeOptions, listening: readonly number[], ok: boolean): ProbeResult {
  const { listenHost, target } = probeAddresses(o.family);
  if (listening.length === 0) return { ok: false, detail: `could not listen on ${listenHost} ports ${o.listenPorts.join(', ')}` };
  return ok
    ? { ok: true, detail: `${target}:${o.probePort} reached our listener on ${listenHost} (${listening.join(', ')})` }
    : { ok: false, detail: `${target}:${o.probePort} did not reach ${listenHost} ports ${listening.join(', ')} within ${o.timeoutMs} ms` };
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
