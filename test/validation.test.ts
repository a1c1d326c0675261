import { describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';

/**
 * Hostile and malformed values, through flags and env vars. Each must be rejected cleanly: exit 1,
 * nothing on stdout, one line on stderr naming the flag or env var, no stack trace. A valid
 * control run shows the base arguments are fine on their own.
 */
const BASE = ['-n', '--enable-ipv6=false', '--output', 'json'];

const INJECTIONS = [
  '80\n-A OUTPUT -j ACCEPT',
  '80 -j ACCEPT',
  '80\r\nCOMMIT',
  '"80"',
  "'80'",
  '80;reboot',
  '80#comment',
  '$(id)',
  '`id`',
  '80\u0000',
  '-j ACCEPT',
  '\n',
  '*\n',
];

type Case = readonly [label: string, args: readonly string[], env: Record<string, string>, names: string];

const flagCases: Case[] = [
  // ports
  ['port 0', ['-p', '0'], {}, '-p/--envoy-port'],
  ['port too big', ['-z', '65536'], {}, '-z/--inbound-capture-port'],
  ['port negative', ['-e', '-1'], {}, '-e/--inbound-tunnel-port'],
  ['port not a number', ['-p', 'http'], {}, '-p/--envoy-port'],
  ['port with sign', ['-p', '+80'], {}, '-p/--envoy-port'],
  ['port range reversed', ['-q', '90:80'], {}, '-q/--istio-outbound-ports'],
  ['port range open', ['-o', '80:'], {}, '-o/--istio-local-outbound-ports-exclude'],
  ['port range of three', ['-q', '1:2:3'], {}, '-q/--istio-outbound-ports'],
  ['port range past 65535', ['-q', '8000:65536'], {}, '-q/--istio-outbound-ports'],
  ['port range with a dash', ['-q', '8000-8080'], {}, '-q/--istio-outbound-ports'],
  ['port range for inbound ports', ['-b', '80:90'], {}, '-b/--istio-inbound-ports'],
  ['port range for excluded inbound ports', ['-d', '80:90'], {}, '-d/--istio-local-exclude-ports'],
  ['port list past 65535', ['-d', '15090,65536'], {}, '-d/--istio-local-exclude-ports'],
  ['port hex', ['-o', '0x50'], {}, '-o/--istio-local-outbound-ports-exclude'],
  ['port float', ['-d', '80.5'], {}, '-d/--istio-local-exclude-ports'],
  ['port list with junk', ['-b', '80,abc'], {}, '-b/--istio-inbound-ports'],
  ['wildcard mixed with ports', ['-b', '*,80'], {}, '-b/--istio-inbound-ports'],
  ['exclude ports wildcard', ['-d', '*'], {}, '-d/--istio-local-exclude-ports'],
  ['probe port', ['--iptables-probe-port', '70000'], {}, '--iptables-probe-port'],
  // CIDRs
  ['cidr without length', ['-i', '10.0.0.1'], {}, '-i/--istio-service-cidr'],
  ['cidr bad octet', ['-i', '10.0.0.256/8'], {}, '-i/--istio-service-cidr'],
  ['cidr long prefix', ['-i', '10.0.0.0/33'], {}, '-i/--istio-service-cidr'],
  ['cidr v6 long prefix', ['-i', 'fd00::/129'], {}, '-i/--istio-service-cidr'],
  ['cidr leading zero', ['-i', '010.0.0.0/8'], {}, '-i/--istio-service-cidr'],
  ['cidr with zone', ['-i', 'fe80::1%eth0/64'], {}, '-i/--istio-service-cidr'],
  ['cidr hostname', ['-i', 'example.com/32'], {}, '-i/--istio-service-cidr'],
  ['cidr wildcard mixed', ['-i', '*,10.0.0.0/8'], {}, '-i/--istio-service-cidr'],
  ['exclude cidr wildcard', ['-x', '*'], {}, '-x/--istio-service-exclude-cidr'],
  ['exclude cidr junk', ['-x', '1.1.1.1/32,nope'], {}, '-x/--istio-service-exclude-cidr'],
  ['v6 triple colon', ['-x', 'fd00:::1/64'], {}, '-x/--istio-service-exclude-cidr'],
  ['v6 too many groups', ['-x', '1:2:3:4:5:6:7:8:9/128'], {}, '-x/--istio-service-exclude-cidr'],
  // interfaces
  ['interface too long', ['-c', 'a23456789012345x'], {}, '-c/--istio-exclude-interfaces'],
  ['interface with slash', ['-c', 'eth0/1'], {}, '-c/--istio-exclude-interfaces'],
  ['interface with colon', ['-k', 'eth0:1'], {}, '-k/--kube-virt-interfaces'],
  ['interface dot', ['-k', '.'], {}, '-k/--kube-virt-interfaces'],
  ['interface dotdot', ['-c', '..'], {}, '-c/--istio-exclude-interfaces'],
  ['interface with bang', ['-c', '!eth0'], {}, '-c/--istio-exclude-interfaces'],
  ['interface leading dash', ['-c', '-eth0'], {}, '-c/--istio-exclude-interfaces'],
  // owners
  ['uid too big', ['-u', '4294967295'], {}, '-u/--proxy-uid'],
  ['uid with space inside', ['-u', 'istio proxy'], {}, '-u/--proxy-uid'],
  ['gid bad name', ['-g', '1337,@wheel'], {}, '-g/--proxy-gid'],
  ['gid name too long', ['-g', `g${'x'.repeat(32)}`], {}, '-g/--proxy-gid'],
  ['owner groups junk', ['--outbound-owner-groups', 'java,!ftp'], {}, '--outbound-owner-groups'],
  ['owner groups too many', ['--outbound-owner-groups', Array.from({ length: 65 }, (_, i) => String(i + 1)).join(',')], {}, '--outbound-owner-groups'],
  ['owner groups exclude wildcard', ['--outbound-owner-groups-exclude', '*'], {}, '--outbound-owner-groups-exclude'],
  // mode, mark, table
  ['mode lower case', ['-m', 'tproxy'], {}, '-m/--istio-inbound-interception-mode'],
  ['mode unknown', ['-m', 'NONE'], {}, '-m/--istio-inbound-interception-mode'],
  ['mark zero', ['-t', '0'], {}, '-t/--istio-inbound-tproxy-mark'],
  ['mark too big', ['-t', '4294967296'], {}, '-t/--istio-inbound-tproxy-mark'],
  ['mark with mask', ['-t', '1337/0xffff'], {}, '-t/--istio-inbound-tproxy-mark'],
  ['table main', ['-r', '254'], {}, '-r/--istio-inbound-tproxy-route-table'],
  ['table local', ['-r', '255'], {}, '-r/--istio-inbound-tproxy-route-table'],
  ['table name', ['-r', 'main'], {}, '-r/--istio-inbound-tproxy-route-table'],
  // DNS and loopback
  ['dns server cidr', ['--dns-servers', '10.0.0.10/32'], {}, '--dns-servers'],
  ['dns server name', ['--dns-servers', 'kube-dns'], {}, '--dns-servers'],
  ['dns server zone', ['--dns-servers', 'fe80::1%eth0'], {}, '--dns-servers'],
  ['loopback not loopback', ['--ipv4-loopback-cidr', '10.0.0.1/32'], {}, '--ipv4-loopback-cidr'],
  ['loopback too wide', ['--ipv4-loopback-cidr', '127.0.0.1/7'], {}, '--ipv4-loopback-cidr'],
  ['loopback ipv6', ['--ipv4-loopback-cidr', '::1/128'], {}, '--ipv4-loopback-cidr'],
  ['loopback without length', ['--ipv4-loopback-cidr', '127.0.0.1'], {}, '--ipv4-loopback-cidr'],
  // booleans, durations, others
  ['bool word', ['--redirect-dns=yes'], {}, '--redirect-dns'],
  ['bool empty', ['--drop-invalid='], {}, '--drop-invalid'],
  ['enable-ipv6 junk', ['--enable-ipv6=maybe'], {}, '--enable-ipv6'],
  ['duration no unit', ['--probe-timeout', '5'], {}, '--probe-timeout'],
  ['duration negative', ['--probe-timeout', '-5s'], {}, '--probe-timeout'],
  ['duration junk', ['--probe-timeout', '5s;rm'], {}, '--probe-timeout'],
  ['log level unknown', ['--log_output_level', 'default:loud'], {}, '--log_output_level'],
  ['netns relative path', ['--network-namespace', '../etc'], {}, '--network-namespace'],
  ['netns with newline', ['--network-namespace', 'pod\nx'], {}, '--network-namespace'],
  ['iptables binary unknown', ['--force-iptables-binary', 'iptables-foo'], {}, '--force-iptables-binary'],
  ['output format', ['--output', 'yaml'], {}, '--output'],
];

const injectionCases: Case[] = INJECTIONS.flatMap((value, i): Case[] => [
  [`inbound ports injection #${i}`, ['-b', value], {}, '-b/--istio-inbound-ports'],
  [`service cidr injection #${i}`, ['-i', `10.0.0.0/8,${value}`], {}, '-i/--istio-service-cidr'],
  [`exclude interface injection #${i}`, ['-c', `eth0,${value}`], {}, '-c/--istio-exclude-interfaces'],
  [`uid injection #${i}`, ['-u', `1337,${value}`], {}, '-u/--proxy-uid'],
]);

const envCases: Case[] = [
  ['env inbound ports', [], { ISTIO_INBOUND_PORTS: '80\n-A OUTPUT -j ACCEPT' }, 'environment variable ISTIO_INBOUND_PORTS'],
  ['env service cidr', [], { ISTIO_SERVICE_CIDR: '10.0.0.0/8 -j ACCEPT' }, 'environment variable ISTIO_SERVICE_CIDR'],
  ['env exclude cidr', [], { ISTIO_SERVICE_EXCLUDE_CIDR: '*' }, 'environment variable ISTIO_SERVICE_EXCLUDE_CIDR'],
  ['env local exclude ports', [], { ISTIO_LOCAL_EXCLUDE_PORTS: '15090,x' }, 'environment variable ISTIO_LOCAL_EXCLUDE_PORTS'],
  ['env outbound ports', [], { ISTIO_OUTBOUND_PORTS: '99999' }, 'environment variable ISTIO_OUTBOUND_PORTS'],
  ['env outbound exclude ports', [], { ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE: '"443"' }, 'environment variable ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE'],
  ['env exclude interfaces', [], { ISTIO_EXCLUDE_INTERFACES: 'eth0 eth1' }, 'environment variable ISTIO_EXCLUDE_INTERFACES'],
  ['env kube virt interfaces', [], { KUBE_VIRT_INTERFACES: "eth1'" }, 'environment variable KUBE_VIRT_INTERFACES'],
  ['env proxy uid', [], { PROXY_UID: '1337\n' }, 'environment variable PROXY_UID'],
  ['env proxy gid', [], { PROXY_GID: '-j' }, 'environment variable PROXY_GID'],
  ['env mode', [], { ISTIO_INBOUND_INTERCEPTION_MODE: 'REDIRECT ' }, 'environment variable ISTIO_INBOUND_INTERCEPTION_MODE'],
  ['env mark', [], { ISTIO_INBOUND_TPROXY_MARK: '1337 -j ACCEPT' }, 'environment variable ISTIO_INBOUND_TPROXY_MARK'],
  ['env table', [], { ISTIO_INBOUND_TPROXY_ROUTE_TABLE: '133;' }, 'environment variable ISTIO_INBOUND_TPROXY_ROUTE_TABLE'],
  ['env capture port', [], { INBOUND_CAPTURE_PORT: '15006x' }, 'environment variable INBOUND_CAPTURE_PORT'],
  ['env tunnel port', [], { INBOUND_TUNNEL_PORT: '0' }, 'environment variable INBOUND_TUNNEL_PORT'],
  ['env owner groups', [], { ISTIO_OUTBOUND_OWNER_GROUPS: 'java\n-A' }, 'environment variable ISTIO_OUTBOUND_OWNER_GROUPS'],
  ['env owner groups exclude', [], { ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: 'a b' }, 'environment variable ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'],
  ['env loopback cidr', [], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '0.0.0.0/0' }, 'environment variable ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
  // Values Istio parses (so it does not ignore them) but that are out of range here.
  ['env probe port 0', [], { IPTABLES_PROBE_PORT: '0' }, 'environment variable IPTABLES_PROBE_PORT'],
  ['env negative probe timeout', [], { PROBE_TIMEOUT: '-5s' }, 'environment variable PROBE_TIMEOUT'],
  ['env capture port not a service link', [], { INBOUND_CAPTURE_PORT: 'tcp://10.0.0.1' }, 'environment variable INBOUND_CAPTURE_PORT'],
  ['env dns servers', [], { DNS_SERVERS: '8.8.8.8 -j ACCEPT' }, 'environment variable DNS_SERVERS'],
  ['env probe timeout too long', [], { PROBE_TIMEOUT: '2h' }, 'environment variable PROBE_TIMEOUT'],
];

const syntaxCases: Case[] = [
  ['unknown flag', ['--capture-everything'], {}, 'capture-everything'],
  ['stray argument', ['apply'], {}, 'apply'],
  ['flag without value', ['-b'], {}, '-b/--istio-inbound-ports'],
];

const all = [...flagCases, ...injectionCases, ...envCases, ...syntaxCases];

describe('rejection of bad values', () => {
  it('holds about a hundred cases', () => {
    expect(all.length).toBeGreaterThanOrEqual(100);
  });

  it('accepts the base arguments on their own (control)', async () => {
    const r = await runCli(BASE);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty('iptablesRestore');
  });

  it.each(all)('%s', async (_label, args, env, names) => {
    const r = await runCli([...BASE, ...args], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^istio-iptables: /);
    expect(lines[0]).toContain(names);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('error messages', () => {
  it.each([
    [['-b', '80x'], 'istio-iptables: invalid value "80x" for -b/--istio-inbound-ports: expected a comma-separated list of ports 0-65535, or "*" ("80x" is not a port)'],
    [['-p', '0'], 'istio-iptables: invalid value "0" for -p/--envoy-port: expected a port 1-65535'],
    [['-x', '*'], 'istio-iptables: invalid value "*" for -x/--istio-service-exclude-cidr: expected a comma-separated list of CIDRs ("*" is not allowed for exclusions)'],
    [['-m', 'tproxy'], 'istio-iptables: invalid value "tproxy" for -m/--istio-inbound-interception-mode: expected REDIRECT or TPROXY, upper case as Istio reads it (did you mean TPROXY?)'],
    [['-b', '80\n-A OUTPUT -j ACCEPT'], 'istio-iptables: invalid value "80\\n-A OUTPUT -j ACCEPT" for -b/--istio-inbound-ports: expected a comma-separated list of ports 0-65535, or "*" ("80\\n-A OUTPUT -j ACCEPT" is not a port)'],
    [['--redirect-dns=yes'], 'istio-iptables: invalid value "yes" for --redirect-dns: expected true or false (did you mean true?)'],
    [['--redirect-dns=maybe'], 'istio-iptables: invalid value "maybe" for --redirect-dns: expected true or false'],
    [['-i', '10.0.0.1,fd00::1/64'], 'istio-iptables: invalid value "10.0.0.1,fd00::1/64" for -i/--istio-service-cidr: expected a comma-separated list of CIDRs such as 10.0.0.0/8 or fd00::/8 ("10.0.0.1" is an address, not a CIDR: for that address alone write 10.0.0.1/32)'],
    [['-x', '10.0.0.0/8,fd00::1'], 'istio-iptables: invalid value "10.0.0.0/8,fd00::1" for -x/--istio-service-exclude-cidr: expected a comma-separated list of CIDRs such as 10.0.0.0/8 or fd00::/8 ("fd00::1" is an address, not a CIDR: for that address alone write fd00::1/128)'],
    [['--ipv4-loopback-cidr', '127.0.0.6'], 'istio-iptables: invalid value "127.0.0.6" for --ipv4-loopback-cidr: expected an IPv4 CIDR within 127.0.0.0/8, such as 127.0.0.1/32 (for that address alone write 127.0.0.6/32)'],
    [['--redirect-dns', '--dns-servers', '10.96.0.10/32'], 'istio-iptables: invalid value "10.96.0.10/32" for --dns-servers: expected a comma-separated list of IPv4 or IPv6 addresses ("10.96.0.10/32" is not an address: a nameserver is an address alone, such as 10.96.0.10)'],
    [['--output', 'JSON'], 'istio-iptables: invalid value "JSON" for --output: expected text, json, svg or mermaid (did you mean json?)'],
    [['--force-iptables-binary', 'nf'], 'istio-iptables: invalid value "nf" for --force-iptables-binary: expected legacy or nft (or iptables-legacy, iptables-nft) (did you mean nft?)'],
    [['--log_target', 'stdrr'], 'istio-iptables: invalid value "stdrr" for --log_target: expected stdout or stderr (log files are not written here) (did you mean stderr?)'],
    [['--log_output_level', 'default:warning'], 'istio-iptables: invalid value "default:warning" for --log_output_level: expected a level or comma-separated scope:level pairs, levels none, fatal, error, warn, info, debug ("default:warning" is not one) (did you mean default:warn?)'],
    [['-m', 'REDIRCT'], 'istio-iptables: invalid value "REDIRCT" for -m/--istio-inbound-interception-mode: expected REDIRECT or TPROXY, upper case as Istio reads it (did you mean REDIRECT?)'],
  ])('%j', async (args, message) => {
    const r = await runCli([...BASE, ...args]);
    expect(r.stderr).toBe(`${message}\n`);
  });

  it('names the env var when the value came from the environment', async () => {
    const r = await runCli(BASE, { ISTIO_INBOUND_PORTS: 'eighty' });
    expect(r.stderr).toBe(
      'istio-iptables: invalid value "eighty" for environment variable ISTIO_INBOUND_PORTS: expected a comma-separated list of ports 0-65535, or "*" ("eighty" is not a port)\n',
    );
  });
});
