import { describe, expect, it } from 'vitest';
import { ipv6FromAddresses, nameserversFromResolvConf, idFromDatabase } from '../src/config/host.js';
import { parseAddress, parseCidr } from '../src/config/net.js';

describe('parseAddress', () => {
  it.each([
    ['10.0.0.1', 'ipv4', '10.0.0.1'],
    ['255.255.255.255', 'ipv4', '255.255.255.255'],
    ['::', 'ipv6', '::'],
    ['::1', 'ipv6', '::1'],
    ['FD00::A', 'ipv6', 'fd00::a'],
    ['2001:db8:0:0:1:0:0:1', 'ipv6', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 'ipv6', '2001:db8::1'],
    ['::ffff:10.1.2.3', 'ipv6', '::ffff:10.1.2.3'],
    ['::127.0.0.53', 'ipv6', '::7f00:35'],
    ['64:ff9b::192.0.2.33', 'ipv6', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:7:8', 'ipv6', '1:2:3:4:5:6:7:8'],
    ['1:0:0:2:0:0:0:3', 'ipv6', '1:0:0:2::3'],
  ])('%s is %s %s', (text, family, canonical) => {
    expect(parseAddress(text)).toMatchObject({ family, text: canonical });
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.1.1.1', '1.2.3.-4', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', '::1%lo', '1.2.3.4::', '::1.2.3.4:5', ' ::1', 'fe80::1/64'])(
    'rejects %j',
    (text) => {
      expect(parseAddress(text)).toBeNull();
    },
  );

  it('marks loopback addresses', () => {
    expect(parseAddress('127.1.2.3')?.loopback).toBe(true);
    expect(parseAddress('::1')?.loopback).toBe(true);
    expect(parseAddress('::2')?.loopback).toBe(false);
  });
});

describe('parseCidr', () => {
  it('keeps host bits as written, as Go netip does', () => {
    expect(parseCidr('10.1.2.3/8')).toMatchObject({ address: '10.1.2.3', prefixLength: 8 });
  });
  it.each(['10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/08', 'fd00::/129', '/8', '10.0.0.0/8/8'])('rejects %j', (text) => {
    expect(parseCidr(text)).toBeNull();
  });
});

describe('host facts', () => {
  it('finds ids in passwd and group text', () => {
    const passwd = 'root:x:0:0:root:/root:/bin/sh\nistio-proxy:x:1337:1337::/home:/bin/false\n';
    expect(idFromDatabase(passwd, 'istio-proxy')).toBe(1337);
    expect(idFromDatabase(passwd, 'nobody')).toBeUndefined();
    expect(idFromDatabase('java:x:1001:\n', 'java')).toBe(1001);
  });

  it('reads nameservers, split per family, skipping what is not a plain address', () => {
    const text = '# comment\nsearch svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\nnameserver fe80::1%eth0\noptions ndots:5\n';
    expect(nameserversFromResolvConf(text)).toEqual({ servers: { ipv4: ['10.96.0.10'], ipv6: ['fd00::a'] }, skipped: ['fe80::1%eth0'] });
  });

  it.each([
    [[['127.0.0.1'], ['::1'], ['10.0.0.5'], ['fd00::5']], false, false],
    // Every IPv4 address before any IPv6 one, as Go's net.InterfaceAddrs() lists them to Istio,
    // whatever order they come in.
    [[['fe80::1'], ['fd00::5'], ['10.0.0.5']], false, false],
    [[['fe80::1'], ['fd00::5'], ['169.254.1.1']], false, true],
    [[['fd00::5'], ['10.0.0.5']], true, true],
    [[['10.0.0.5'], ['fd00::5']], true, true],
    [[['169.254.1.1'], ['10.0.0.5']], true, false],
    [[['fe80::1'], ['ff02::1']], true, false],
  ])('IPv6 detection from %j (dual stack %s) is %s', (list, dualStack, expected) => {
    const addrs = list.map(([address]) => ({ address: address ?? '', family: (address ?? '').includes(':') ? ('IPv6' as const) : ('IPv4' as const) }));
    expect(ipv6FromAddresses(addrs, dualStack)).toBe(expected);
  });
});

describe('addresses as iptables-save prints them (glibc inet_ntop, masked)', () => {
  it.each([
    ['::/0', '::/0'],
    ['::1/128', '::1/128'],
    ['fd00::a/128', 'fd00::a/128'],
    ['::7f00:35/128', '::127.0.0.53/128'],
    ['::ffff:10.1.2.3/128', '::ffff:10.1.2.3/128'],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['1:0:2:3:4:5:6:7/128', '1:0:2:3:4:5:6:7/128'],
    ['fd00:1:2:3::5/48', 'fd00:1:2::/48'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
  ])('%s -> %s', async (text, saved) => {
    const { savedCidr } = await import('../src/apply/saveform.js');
    const c = parseCidr(text);
    expect(c).not.toBeNull();
    if (c) expect(savedCidr(c)).toBe(saved);
  });
});
