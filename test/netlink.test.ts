import { describe, expect, it } from 'vitest';
import { ipResult } from '../src/platform/quickjs/netlink.js';
import { namespaceFile } from '../src/apply/commands.js';
import type { NetlinkFailure } from '../src/platform/host.js';

/**
 * The entrypoint's netlink results read as `ip`'s (iproute2 6.1): the kernel's errno as
 * "RTNETLINK answers: <strerror>" with exit status 2, or its extended ack as "Error: <msg>."
 * (kernel tests compare whole runs with `ip`: test/kernel/netlink.test.ts).
 */
const failure = (f: Partial<NetlinkFailure>): NetlinkFailure => ({ errno: 17, code: 'EEXIST', text: 'File exists', extack: null, where: 'kernel', ...f });

describe('netlink results as ip reports them', () => {
  it.each([
    ['done', null, 0, ''],
    ['the kernel refuses without a message', failure({}), 2, 'RTNETLINK answers: File exists\n'],
    ['the kernel explains (a period added, as ip does)', failure({ errno: 100, code: 'ENETDOWN', text: 'Network is down', extack: 'Nexthop device is not up' }), 2, 'Error: Nexthop device is not up.\n'],
    ['the kernel explains, period included', failure({ errno: 99, code: 'EADDRNOTAVAIL', extack: 'ipv6: address not found.' }), 2, 'Error: ipv6: address not found.\n'],
    ['no device named lo', failure({ errno: 19, code: 'ENODEV', text: 'No such device', where: 'device' }), 1, 'Cannot find device "lo"\n'],
    ['the namespace cannot be entered', failure({ errno: 1, code: 'EPERM', text: 'Operation not permitted', where: 'namespace' }), 1, 'Cannot open network namespace "/var/run/netns/pod": Operation not permitted\n'],
    ['no reply in time', failure({ errno: 110, code: 'ETIMEDOUT', text: 'Connection timed out', where: 'socket' }), 1, 'rtnetlink: Connection timed out\n'],
  ] as const)('%s', (_n, f, exitCode, stderr) => {
    expect(ipResult(f, '/var/run/netns/pod')).toEqual({ exitCode, stdout: '', stderr, notFound: false });
  });

  it('--network-namespace: a name under /var/run/netns, or a path as given; none is ours', () => {
    expect(namespaceFile('pod1')).toBe('/var/run/netns/pod1');
    expect(namespaceFile('/proc/42/ns/net')).toBe('/proc/42/ns/net');
    expect(namespaceFile(undefined)).toBeUndefined();
  });
});
