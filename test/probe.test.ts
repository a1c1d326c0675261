import { describe, expect, it } from 'vitest';
import { connectedDirectly, parseProbeArgs, probeArgs, ProbeJudge, type ProbeOptions } from '../src/apply/probe.js';

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

});

/**
 * The verdict (ProbeJudge), kept the same way by both runtimes: our listener must have received
 * the token through the redirect, on the client's own connection. What answers the client
 * elsewhere (an echo server at 127.0.0.6:15002) or relays its token to our listener from a socket
 * of its own (even bound to the client's port) counts for nothing.
 */

/** /proc/net/tcp and tcp6 as a little-endian kernel prints them: the header, then one line per socket. */
const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const line = (local: string, remote: string, uid = 1337) => `   0: ${local} ${remote} 01 00000000:00000000 00:00000000 00000000  ${uid}        0 4242 1 0000000000000000 20 4 30 10 -1\n`;
const V4_LISTEN = line('0100007F:3A9E', '00000000:0000', 0);
/** The client's redirected socket as the kernel lists it: 127.0.0.1:40000 connected to 127.0.0.6:15002. */
const REDIRECTED = HEADER + V4_LISTEN + line('0100007F:9C40', '0600007F:3A9A');
/** A relay's socket from the client's own port (SO_REUSEADDR) straight to our listener 127.0.0.1:15006. */
const DIRECT = REDIRECTED + line('0100007F:9C40', '0100007F:3A9E', 65534);
const V6_REDIRECTED = `${HEADER}${line('00000000000000000000000001000000:9C41', '00000000000000000000000006000000:3A9A')}`;

describe('the probe verdict', () => {
  const V4: ProbeOptions = { ...OPTIONS, family: 'ipv4', uid: 1337, gid: 1337, timeoutMs: 1000 };
  const judge = (o: ProbeOptions = V4) => new ProbeJudge(o, 'token');

  it.each([
    ['IPv4, little-endian', HEADER + line('0100007F:9C40', '0100007F:3A9E'), '127.0.0.1', 15006, true],
    ['IPv4, big-endian', HEADER + line('7F000001:9C40', '7F000001:3A9E'), '127.0.0.1', 15006, true],
    ['IPv4, redirected', REDIRECTED, '127.0.0.1', 15006, false],
    ['IPv4, another listener port', DIRECT, '127.0.0.1', 15001, false],
    ['IPv6, little-endian', HEADER + line('00000000000000000000000001000000:9C40', '00000000000000000000000001000000:3A9E'), '::1', 15006, true],
    ['IPv6, big-endian', HEADER + line('00000000000000000000000000000001:9C40', '00000000000000000000000000000001:3A9E'), '::1', 15006, true],
    ['IPv6, redirected', V6_REDIRECTED, '::1', 15006, false],
    ['empty table', '', '127.0.0.1', 15006, false],
  ])('the kernel\'s socket table: a socket connected straight to our listener (%s)', (_what, table, address, listener, direct) => {
    expect(connectedDirectly(table, { address, port: 40000 }, { address, port: listener })).toBe(direct);
  });

  it('passes when the token reaches our listener on the client\'s own connection, whichever is heard first', () => {
    const first = judge();
    let called = 0;
    first.onPassed = () => called++;
    first.clientConnected(40000);
    first.tokenReceived('127.0.0.1', 40000, 15006, REDIRECTED);
    expect(first.passed).toBe(true);
    expect(called).toBe(1);
    expect(first.result([15001, 15006])).toEqual({
      ok: true,
      detail: "127.0.0.6:15002 reached our listener on 127.0.0.1 (15001, 15006): port 15006 received the token from the client's socket 127.0.0.1:40000",
    });
    // The listener may hear the token before the client reports its port (Node: another process).
    const later = judge(OPTIONS);
    later.tokenReceived('::1', 40001, 15006, V6_REDIRECTED);
    expect(later.passed).toBe(false);
    later.clientConnected(40001);
    expect(later.result([15001, 15006])).toEqual({
      ok: true,
      detail: "::6:15002 reached our listener on ::1 (15001, 15006): port 15006 received the token from the client's socket [::1]:40001",
    });
    // Passing once is enough; more connections change nothing.
    first.clientConnected(40002);
    first.tokenReceived('127.0.0.1', 40002, 15001, REDIRECTED);
    expect(called).toBe(1);
  });

  it('fails when something else answers the client: an echo server at 127.0.0.6:15002', () => {
    const j = judge();
    j.clientConnected(40000);
    j.clientConnected(40001);
    expect(j.passed).toBe(false);
    expect(j.result([15001, 15006])).toEqual({
      ok: false,
      detail: '127.0.0.6:15002 did not reach 127.0.0.1 ports 15001, 15006 within 1000 ms: the client connected 2 times, never to our listener: something else accepts connections at 127.0.0.6:15002',
    });
  });

  it.each([
    ['from another port (a relay\'s own socket)', '127.0.0.1', 41000, REDIRECTED, "not from the client's own socket (relayed?)"],
    ['from another address with the client\'s port', '127.0.0.6', 40000, REDIRECTED, "not from the client's own socket (relayed?)"],
    ['from the client\'s port, straight to our listener (a relay bound to it)', '127.0.0.1', 40000, DIRECT, 'on a connection made to it directly, not through the redirect (relayed?)'],
    ['when the kernel\'s socket table cannot be read', '127.0.0.1', 40000, new Error('ENOENT: no such file'), 'with no way to tell whether through the redirect (/proc/net/tcp: ENOENT: no such file)'],
  ])('fails when the token comes %s', (_what, address, port, table, how) => {
    const j = judge();
    j.clientConnected(40000);
    j.tokenReceived(address, port, 15006, table);
    expect(j.passed).toBe(false);
    const { ok, detail } = j.result([15001, 15006]);
    expect(ok).toBe(false);
    expect(detail).toBe(
      `127.0.0.6:15002 did not reach 127.0.0.1 ports 15001, 15006 within 1000 ms: the token came to port 15006 from ${address}:${port} ${how}, which does not count; the client connected once, never to our listener: something else accepts connections at 127.0.0.6:15002`,
    );
  });

  it('says why the client got nowhere, could not run, or nothing could listen', () => {
    const refused = judge();
    refused.clientFailed('ECONNREFUSED');
    expect(refused.result([15001, 15006]).detail).toBe('127.0.0.6:15002 did not reach 127.0.0.1 ports 15001, 15006 within 1000 ms: the client\'s connections failed (ECONNREFUSED)');
    expect(judge().result([15006]).detail).toBe('127.0.0.6:15002 did not reach 127.0.0.1 ports 15006 within 1000 ms');
    expect(judge().result([15001], 'cannot make a socket as uid 1337 gid 1337')).toEqual({
      ok: false,
      detail: 'the probe client (uid 1337, gid 1337) failed: cannot make a socket as uid 1337 gid 1337',
    });
    expect(judge(OPTIONS).result([])).toEqual({ ok: false, detail: 'could not listen on ::1 ports 15001, 15006' });
  });
});
