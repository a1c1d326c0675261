import { describe, expect, it } from 'vitest';
import { fixedHost } from '../src/config/host.js';
import { dryRunJson, runCli } from './support/cli.js';

const POD_ARGS = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info'];

describe('Istio init-container arguments', () => {
  it('work verbatim, leading program name included', async () => {
    const r = await runCli([...POD_ARGS, '-n', '--output', 'json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { iptablesRestore: string };
    expect(doc.iptablesRestore).toContain('-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN\n');
    expect(doc.iptablesRestore).toContain('-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT\n');
    expect(doc.iptablesRestore).toContain('-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n');
  });

  it('give the same plan with or without the program name', async () => {
    const a = await runCli([...POD_ARGS, '-n']);
    const b = await runCli([...POD_ARGS.slice(1), '-n']);
    expect(a.stdout).toBe(b.stdout);
  });

  it('without --dry-run, a missing --network-namespace is a clear error before anything runs', async () => {
    const r = await runCli([...POD_ARGS, '--network-namespace', 'iit-no-such-namespace']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'istio-iptables: invalid value "iit-no-such-namespace" for --network-namespace: expected an existing network namespace (a name under /var/run/netns or a path), but /var/run/netns/iit-no-such-namespace does not exist\n',
    );
  });
});

describe('precedence', () => {
  it('a flag beats its environment variable', async () => {
    const doc = await dryRunJson(['-b', '8080'], { ISTIO_INBOUND_PORTS: '9090' });
    expect(doc.iptablesRestore).toContain('--dport 8080 -j ISTIO_IN_REDIRECT');
    expect(doc.iptablesRestore).not.toContain('9090');
  });

  it('an environment variable beats the default', async () => {
    const doc = await dryRunJson([], { ISTIO_INBOUND_PORTS: '9090', INBOUND_CAPTURE_PORT: '16006' });
    expect(doc.iptablesRestore).toContain('--dport 9090 -j ISTIO_IN_REDIRECT');
    expect(doc.iptablesRestore).toContain('REDIRECT --to-ports 16006');
  });

  it('a later flag beats an earlier one, short or long', async () => {
    const doc = await dryRunJson(['-b', '1111', '--istio-inbound-ports', '2222', '-b', '3333']);
    expect(doc.iptablesRestore).toContain('--dport 3333');
    expect(doc.iptablesRestore).not.toMatch(/1111|2222/);
  });

  it('an empty environment variable counts as unset', async () => {
    // INBOUND_CAPTURE_PORT defaults to 15006; read as set, "" would fail validation (not a port).
    const doc = await dryRunJson(['-b', '*'], { INBOUND_CAPTURE_PORT: '' });
    expect(doc.iptablesRestore).toContain('-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006');
  });

  it.each([
    [{ ISTIO_META_DNS_CAPTURE: 'true', REDIRECT_DNS: 'false' }, true],
    [{ REDIRECT_DNS: 'true' }, true],
    [{ ISTIO_META_DNS_CAPTURE: 'false', REDIRECT_DNS: 'true' }, false],
  ])('DNS capture from %j: %s', async (env, on) => {
    const doc = await dryRunJson(['--dns-servers', '10.0.0.10'], env);
    expect(doc.iptablesRestore?.includes('ISTIO_OUTPUT_DNS')).toBe(on);
  });

  it.each([
    ['INVALID_DROP', 'true'],
    ['DROP_INVALID', '1'],
  ])('drop-invalid from %s=%s', async (name, value) => {
    const doc = await dryRunJson([], { [name]: value });
    expect(doc.iptablesRestore).toContain('-j ISTIO_DROP');
  });

  it.each([
    ['PROXY_UID', '1234', '--uid-owner 1234'],
    ['PROXY_GID', '4321', '--gid-owner 4321'],
    ['ISTIO_INBOUND_INTERCEPTION_MODE', 'TPROXY', 'ISTIO_TPROXY'],
    ['ISTIO_INBOUND_TPROXY_MARK', '77', '--set-mark 77'],
    ['ISTIO_SERVICE_CIDR', '10.0.0.0/8', '-d 10.0.0.0/8 -j ISTIO_REDIRECT'],
    ['ISTIO_SERVICE_EXCLUDE_CIDR', '192.168.0.0/16', '-d 192.168.0.0/16 -j RETURN'],
    ['ISTIO_OUTBOUND_PORTS', '443', '--dport 443 -j ISTIO_REDIRECT'],
    ['ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE', '3306', '-p udp --dport 3306 -j RETURN'],
    ['ISTIO_EXCLUDE_INTERFACES', 'net1', '-A OUTPUT -o net1 -j RETURN'],
    ['KUBE_VIRT_INTERFACES', 'vnet0', '-I PREROUTING 1 -i vnet0 -j RETURN'],
    ['ISTIO_OUTBOUND_OWNER_GROUPS', '202', '! --gid-owner 202 -j RETURN'],
    ['ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE', '888', '--gid-owner 888 -j RETURN'],
    ['ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR', '127.0.0.0/8', '-d 127.0.0.0/8 -j RETURN'],
    ['INBOUND_TUNNEL_PORT', '15009', '--dport 15009 -j RETURN'],
  ])('%s=%s is read', async (name, value, expected) => {
    const args = name === 'ISTIO_INBOUND_TPROXY_MARK' ? ['-b', '*', '-m', 'TPROXY'] : ['-b', '*'];
    const doc = await dryRunJson(args, { [name]: value });
    expect(doc.iptablesRestore).toContain(expected);
  });

  it('ENVOY_PORT is not read (the proxy port has no environment variable)', async () => {
    const doc = await dryRunJson([], { ENVOY_PORT: '9999' });
    expect(doc.iptablesRestore).toContain('REDIRECT --to-ports 15001');
  });
});

describe('derived defaults', () => {
  it('the proxy uid comes from the host when -u is absent, and the gid follows it', async () => {
    const r = await runCli(['-n', '--output', 'json'], {}, fixedHost({ proxyUid: 101 }));
    expect(r.stdout).toContain('--uid-owner 101');
    expect(r.stdout).toContain('--gid-owner 101');
  });

  it('-u "" falls back to the derived uid, as in Istio', async () => {
    const r = await runCli(['-n', '--output', 'json', '-u', ''], {}, fixedHost({ proxyUid: 101 }));
    expect(r.stdout).toContain('--uid-owner 101');
  });

  it('nameservers come from the host only for --redirect-dns without --capture-all-dns or --dns-servers', async () => {
    let asked = 0;
    const host = { ...fixedHost(), dnsServers: () => (asked++, { ipv4: ['10.0.0.10'], ipv6: [] }) };
    const on = await runCli(['-n', '--output', 'json', '--redirect-dns'], {}, host);
    expect(on.stdout).toContain('-d 10.0.0.10/32 -j REDIRECT --to-ports 15053');
    expect(asked).toBe(1);
    await runCli(['-n', '--redirect-dns', '--capture-all-dns'], {}, host);
    await runCli(['-n', '--redirect-dns', '--dns-servers', '1.1.1.1'], {}, host);
    await runCli(['-n'], {}, host);
    expect(asked).toBe(1);
  });

  it('IPv6 is detected from the host unless --enable-ipv6 decides', async () => {
    const on = await runCli(['-n', '--output', 'json'], {}, fixedHost({ ipv6: true }));
    expect(JSON.parse(on.stdout).ip6tablesRestore).toContain('::6/128');
    const off = await runCli(['-n', '--output', 'json', '--enable-ipv6=false'], {}, fixedHost({ ipv6: true }));
    expect(JSON.parse(off.stdout).ip6tablesRestore).toBeNull();
    const forced = await runCli(['-n', '--output', 'json', '--enable-ipv6'], {}, fixedHost({ ipv6: false }));
    expect(JSON.parse(forced.stdout).ip6tablesRestore).not.toBeNull();
  });
});

describe('outputs', () => {
  it('JSON has both payloads, ip argv arrays starting with ip, and notes', async () => {
    const doc = await dryRunJson(['-m', 'TPROXY', '-b', '*', '--enable-ipv6=true']);
    expect(Object.keys(doc).sort()).toEqual(['ip6tablesRestore', 'ipCommands', 'iptablesRestore', 'notes']);
    expect(doc.iptablesRestore).toMatch(/^\*mangle\n/);
    expect(doc.ip6tablesRestore).toMatch(/COMMIT\n$/);
    expect(doc.ipCommands.every((argv) => argv[0] === 'ip')).toBe(true);
    expect(doc.ipCommands).toEqual([
      ['ip', '-6', 'addr', 'add', '::6/128', 'dev', 'lo'],
      ['ip', '-4', 'rule', 'add', 'fwmark', '1337', 'lookup', '133'],
      ['ip', '-6', 'rule', 'add', 'fwmark', '1337', 'lookup', '133'],
      ['ip', '-4', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '133'],
      ['ip', '-6', 'route', 'add', 'local', '::/0', 'dev', 'lo', 'table', '133'],
    ]);
  });

  it('TPROXY without inbound ports needs no policy routing', async () => {
    const doc = await dryRunJson(['-m', 'TPROXY', '-b', '']);
    expect(doc.ipCommands).toEqual([]);
  });

  it('a warning for DNS capture without servers goes to stderr, not stdout', async () => {
    const r = await runCli(['-n', '--redirect-dns', '--dns-servers', '', '--output', 'json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warn\tDNS capture disabled/m);
    expect(JSON.parse(r.stdout).notes).toHaveLength(1);
  });

  it('--log_output_level=default:error silences warnings', async () => {
    const r = await runCli(['-n', '--redirect-dns', '--dns-servers', '', '--log_output_level', 'default:error']);
    expect(r.stderr).toBe('');
  });
});

describe('--help', () => {
  it('lists every flag with its short form, env vars and defaults, and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const text of ['-p, --envoy-port', '-b, --istio-inbound-ports', '--redirect-dns', '[env: ISTIO_META_DNS_CAPTURE, REDIRECT_DNS]', '[default: 15006]', '--native-nftables', '--log_output_level']) {
      expect(r.stdout).toContain(text);
    }
    expect(r.stderr).toBe('');
  });
});

describe('boolean flags take every Go spelling', () => {
  it.each(['1', 't', 'T', 'true', 'TRUE', 'True'])('--redirect-dns=%s turns DNS capture on', async (v) => {
    const doc = await dryRunJson([`--redirect-dns=${v}`, '--dns-servers', '10.0.0.10']);
    expect(doc.iptablesRestore).toContain('ISTIO_OUTPUT_DNS');
  });
  it.each(['0', 'f', 'F', 'false', 'FALSE', 'False'])('--redirect-dns=%s leaves it off', async (v) => {
    const doc = await dryRunJson([`--redirect-dns=${v}`, '--dns-servers', '10.0.0.10']);
    expect(doc.iptablesRestore).not.toContain('ISTIO_OUTPUT_DNS');
  });
});
