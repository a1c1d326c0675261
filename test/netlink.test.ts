import { describe, expect, it } from 'vitest';
import { describeRouteFailure, routeFailureLine, type RouteFailure } from '../src/apply/routes.js';
import { namespaceFile } from '../src/apply/commands.js';
import type { NetlinkFailure } from '../src/platform/host.js';
import type { RouteStep } from '../src/model/rule.js';

/**
 * A routing failure is what it is: `ip`'s exit status and words (the Node CLI), or the kernel's
 * answer over netlink (the entrypoint: errno, its name, the extended ack, where it failed), worded
 * in one place (kernel tests compare whole runs: test/kernel/netlink.test.ts).
 */
const netlink = (f: Partial<NetlinkFailure>): RouteFailure => ({ kind: 'netlink', errno: 17, code: 'EEXIST', text: 'File exists', extack: null, where: 'kernel', ...f });
const STEP: RouteStep = { kind: 'localRoute', family: 'ipv6', table: 133, why: { purpose: 'test', options: [] } };

describe('routing failures, worded in one place', () => {
  it.each([
    ['the kernel refuses without a message', netlink({}), '(netlink, EEXIST): File exists'],
    ['the kernel explains', netlink({ errno: 100, code: 'ENETDOWN', text: 'Network is down', extack: 'Nexthop device is not up' }), '(netlink, ENETDOWN): Nexthop device is not up'],
    ['the kernel explains, period included', netlink({ errno: 99, code: 'EADDRNOTAVAIL', extack: 'ipv6: address not found.' }), '(netlink, EADDRNOTAVAIL): ipv6: address not found'],
    ['no device named lo', netlink({ errno: 19, code: 'ENODEV', text: 'No such device', where: 'device' }), '(netlink, ENODEV): no device named lo'],
    ['the namespace cannot be entered', netlink({ errno: 1, code: 'EPERM', text: 'Operation not permitted', where: 'namespace' }), '(netlink, EPERM): cannot enter the network namespace: Operation not permitted'],
    ['no reply in time', netlink({ errno: 110, code: 'ETIMEDOUT', text: 'Connection timed out', where: 'socket' }), '(netlink, ETIMEDOUT): the netlink socket failed: Connection timed out'],
    ['ip failed', { kind: 'command', argv: ['ip', '-6', 'route'], exitCode: 2, stderr: 'RTNETLINK answers: File exists\n', notFound: false }, '(exit 2): RTNETLINK answers: File exists'],
    ['ip not installed', { kind: 'command', argv: ['ip', '-6', 'route'], exitCode: -1, stderr: '', notFound: true }, 'ip not found'],
  ] as const)('%s', (_n, f, text) => {
    expect(describeRouteFailure(f)).toBe(text);
  });

  it('a failed step names the step as the `ip` command it stands for, whoever did the work', () => {
    expect(routeFailureLine(STEP, 'add', netlink({ code: 'ENETDOWN', extack: 'Nexthop device is not up' }))).toBe('ip -6 route add local ::/0 dev lo table 133 failed (netlink, ENETDOWN): Nexthop device is not up');
  });

  it('--network-namespace: a name under /var/run/netns, or a path as given; none is ours', () => {
    expect(namespaceFile('pod1')).toBe('/var/run/netns/pod1');
    expect(namespaceFile('/proc/42/ns/net')).toBe('/proc/42/ns/net');
    expect(namespaceFile(undefined)).toBeUndefined();
  });
});
