import { describe, expect, it } from 'vitest';
import { parseProbeArgs, probeArgs, probeResult, type ProbeOptions } from '../src/apply/probe.js';

/**
 * The probe subcommand's parameters (src/apply/probe.ts): what a run with --network-namespace
 * hands the probe inside the namespace must come back exactly, and nothing else is accepted.
 */
const OPTIONS: ProbeOptions = { family: 'ipv6', listenPorts: [15001, 15006], probePort: 15002, timeoutMs: 5000, uid: 4294967294, gid: 0 };

describe('the probe subcommand', () => {
  it('reads back exactly what it was given', () => {
    expect(probeArgs(OPTIONS)).toEqual(['family=ipv6', 'listen=15001,15006', 'port=15002', 'timeout=5000', 'uid=4294967294', 'gid=0']);
    expect(parseProbeArgs(probeArgs(OPTIONS))).toEqual(OPTIONS);
    expect(parseProbeArgs([...probeArgs(OPTIONS)].reverse())).toEqual(OPTIONS);
  });

  it.each([
    [['family=ipv4', 'listen=15001', 'port=15002', 'timeout=100', 'uid=1'], /gid="": expected a number/],
    [['family=ipv5', 'listen=15001', 'port=15002', 'timeout=100', 'uid=1', 'gid=1'], /family must be ipv4 or ipv6/],
    [['family=ipv4', 'listen=0', 'port=15002', 'timeout=100', 'uid=1', 'gid=1'], /listen="0": expected ports 1-65535/],
    [['family=ipv4', 'listen=15001,', 'port=15002', 'timeout=100', 'uid=1', 'gid=1'], /listen="15001,"/],
    [['family=ipv4', 'listen=15001', 'port=65536', 'timeout=100', 'uid=1', 'gid=1'], /port="65536": expected a number 0-65535/],
    [['family=ipv4', 'listen=15001', 'port=15002', 'timeout=-1', 'uid=1', 'gid=1'], /timeout="-1"/],
    [['family=ipv4', 'listen=15001', 'port=15002', 'timeout=100', 'uid=01', 'gid=1'], /uid="01"/],
    [['family=ipv4', 'listen=15001', 'port=15002', 'timeout=100', 'uid=4294967295', 'gid=1'], /uid="4294967295"/],
    [['family=ipv4', 'family=ipv6', 'listen=15001', 'port=15002', 'timeout=100', 'uid=1', 'gid=1'], /unexpected argument "family=ipv6"/],
    [['--network-namespace=pod', 'family=ipv4'], /unexpected argument "--network-namespace=pod"/],
    [['family=ipv4', 'listen=15001', 'port=15002', 'timeout=100', 'uid=1', 'gid=1', 'stray'], /unexpected argument "stray"/],
  ])('%j is refused', (args, message) => {
    expect(() => parseProbeArgs(args)).toThrow(message);
  });

  it('words its result the same for both runtimes', () => {
    expect(probeResult(OPTIONS, [15001, 15006], true).detail).toBe('::6:15002 reached our listener on ::1 (15001, 15006)');
    expect(probeResult(OPTIONS, [15006], false)).toEqual({ ok: false, detail: '::6:15002 did not reach ::1 ports 15006 within 5000 ms' });
    expect(probeResult(OPTIONS, [], true)).toEqual({ ok: false, detail: 'could not listen on ::1 ports 15001, 15006' });
  });
});
