import { describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { fixedHost } from '../src/config/host.js';
import { DEFAULT_SPORT, parseFlowLines, parseFlowWords, validateFlow } from '../src/trace/index.js';

/**
 * trace says why (issue 20): each verdict names the rule and the flag, variable and value that
 * decided it, for every kind of exclusion; a flag that captures nothing says so. And trace for
 * people and CI (issue 19): words in any case, the arrow optional, one set of flow defaults, a bad
 * --flows line reported by number while the others run, each result echoing its flow, --expect.
 */

const trace = (args: readonly string[], stdin?: string) => runCli(['trace', ...args], {}, fixedHost(), stdin);
const BASE = ['-p', '15001', '-z', '15006', '-u', '1337', '-g', '1337', '--enable-ipv6=false'];
const APP = ['uid=1000', 'gid=1000'];

/** The verdict line of a text trace. */
async function verdict(config: readonly string[], flow: readonly string[]): Promise<string> {
  const r = await trace([...BASE, ...config, ...flow]);
  expect(r.stderr, r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout.split('\n').find((l) => l.startsWith('verdict: ')) ?? '';
}

describe('the verdict names what decided it, and the flag behind it', () => {
  it.each([
    ['inbound port excluded (-d)', ['-b', '*', '-d', '15090,15021'], ['inbound', 'tcp', '10.1.1.1', '10.0.0.5:15021'], 'verdict: pass (not captured): inbound port excluded from capture (15021 from -d/--istio-local-exclude-ports or $ISTIO_LOCAL_EXCLUDE_PORTS)'],
    ['inbound port not listed (-b)', ['-b', '8080,9090'], ['inbound', 'tcp', '10.1.1.1', '10.0.0.5:80'], 'verdict: pass (not captured): inbound port 80 is not among the captured ports (8080,9090 from -b/--istio-inbound-ports or $ISTIO_INBOUND_PORTS)'],
    ['inbound capture off (-b "")', ['-b', ''], ['inbound', 'tcp', '10.1.1.1', '10.0.0.5:80'], 'verdict: pass (not captured): inbound capture is off ("" from -b/--istio-inbound-ports or $ISTIO_INBOUND_PORTS)'],
    ['inbound tunnel port (-e)', ['-b', '*'], ['inbound', 'tcp', '10.1.1.1', '10.0.0.5:15008'], 'verdict: pass (not captured): the tunnel (HBONE) port is never redirected (15008 from -e/--inbound-tunnel-port or $INBOUND_TUNNEL_PORT, the default)'],
    ['inbound from an excluded interface (-c)', ['-b', '*', '-c', 'eth1'], ['inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080', 'in=eth1'], 'verdict: pass (not captured): traffic in from an excluded interface is never captured (eth1 from -c/--istio-exclude-interfaces or $ISTIO_EXCLUDE_INTERFACES)'],
    ['outbound to an excluded interface (-c)', ['-i', '*', '-c', 'eth1'], ['outbound', 'tcp', '10.0.0.5', '10.2.0.1:80', 'out=eth1', ...APP], 'verdict: pass (not captured): traffic out to an excluded interface is never captured (eth1 from -c/--istio-exclude-interfaces or $ISTIO_EXCLUDE_INTERFACES)'],
    ['outbound port excluded (-o)', ['-i', '*', '-o', '3306'], ['outbound', 'tcp', '10.0.0.5', '10.2.0.1:3306', ...APP], 'verdict: pass (not captured): outbound port excluded from capture (3306 from -o/--istio-local-outbound-ports-exclude or $ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE)'],
    ['outbound CIDR excluded (-x)', ['-i', '*', '-x', '10.96.0.0/12'], ['outbound', 'tcp', '10.0.0.5', '10.96.0.10:443', ...APP], 'verdict: pass (not captured): outbound destination excluded from capture (10.96.0.0/12 from -x/--istio-service-exclude-cidr or $ISTIO_SERVICE_EXCLUDE_CIDR)'],
    ['outbound CIDR not included (-i)', ['-i', '10.0.0.0/8'], ['outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP], 'verdict: pass (not captured): 93.184.216.34:443 is in none of the captured destinations or ports (10.0.0.0/8 from -i/--istio-service-cidr or $ISTIO_SERVICE_CIDR)'],
    ['outbound capture off (-i "")', ['-i', ''], ['outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP], 'verdict: pass (not captured): outbound capture is off ("" from -i/--istio-service-cidr or $ISTIO_SERVICE_CIDR; "" from -q/--istio-outbound-ports or $ISTIO_OUTBOUND_PORTS)'],
    ['outbound CIDR included (-i)', ['-i', '10.0.0.0/8'], ['outbound', 'tcp', '10.0.0.5', '10.2.0.1:443', ...APP], "verdict: redirect to port 15001: outbound destination captured (10.0.0.0/8 from -i/--istio-service-cidr or $ISTIO_SERVICE_CIDR); captured outbound TCP goes to the proxy's outbound listener (15001 from -p/--envoy-port, the default)"],
    ['outbound port included (-q)', ['-i', '', '-q', '443'], ['outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP], "verdict: redirect to port 15001: outbound port captured, whatever the destination (443 from -q/--istio-outbound-ports or $ISTIO_OUTBOUND_PORTS); captured outbound TCP goes to the proxy's outbound listener (15001 from -p/--envoy-port, the default)"],
    ['the proxy uid (-u)', ['-i', '*'], ['outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', 'uid=1337', 'gid=1000'], "verdict: pass (not captured): the proxy's own traffic is never captured (1337 from -u/--proxy-uid or $PROXY_UID)"],
    ['the proxy gid (-g)', ['-i', '*'], ['outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', 'uid=0', 'gid=1337'], "verdict: pass (not captured): the proxy's own traffic is never captured (1337 from -g/--proxy-gid or $PROXY_GID)"],
    ['an excluded owner group', ['-i', '*', '--outbound-owner-groups-exclude', '888'], ['outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', 'uid=1000', 'gid=888'], "verdict: pass (not captured): an excluded group's outbound traffic is not captured (888 from --outbound-owner-groups-exclude or $ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE)"],
    ["an app's traffic on lo (-u)", ['-i', '*'], ['outbound', 'tcp', '127.0.0.1', '127.0.0.1:8080', ...APP], "verdict: pass (not captured): other processes' traffic on lo is not captured (1337 from -u/--proxy-uid or $PROXY_UID)"],
    ['localhost, when lo is captured (-i 127.0.0.1/32)', ['-i', '127.0.0.1/32,10.0.0.0/8', '--ipv4-loopback-cidr', '127.0.0.0/8'], ['outbound', 'tcp', '127.0.0.1', '127.0.0.1:8080', ...APP], 'verdict: pass (not captured): localhost is never captured (127.0.0.0/8 from --ipv4-loopback-cidr or $ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR)'],
    ['DNS to a configured server (--redirect-dns, --dns-servers)', ['-i', '*', '--redirect-dns', '--dns-servers', '10.96.0.10'], ['outbound', 'udp', '10.0.0.5', '10.96.0.10:53', ...APP], 'verdict: redirect to port 15053: locally generated traffic enters ISTIO_OUTPUT_DNS, for DNS capture (true from --redirect-dns or $ISTIO_META_DNS_CAPTURE or $REDIRECT_DNS); DNS to a configured nameserver goes to the istio-agent (port 15053) (10.96.0.10 from --dns-servers or $DNS_SERVERS)'],
    ['DNS to another server', ['-i', '*', '--redirect-dns', '--dns-servers', '10.96.0.10'], ['outbound', 'udp', '10.0.0.5', '8.8.8.8:53', ...APP], 'verdict: pass (not captured): DNS to 8.8.8.8 is not captured: not a configured nameserver (10.96.0.10 from --dns-servers or $DNS_SERVERS; false from --capture-all-dns or $CAPTURE_ALL_DNS, the default)'],
    ['DNS without --redirect-dns', ['-i', '*'], ['outbound', 'udp', '10.0.0.5', '10.96.0.10:53', ...APP], 'verdict: pass (not captured): DNS is not captured (false from --redirect-dns or $ISTIO_META_DNS_CAPTURE or $REDIRECT_DNS, the default)'],
    ["the agent's own DNS query (-u)", ['-i', '*', '--redirect-dns', '--capture-all-dns'], ['outbound', 'udp', '10.0.0.5', '8.8.8.8:53', 'uid=1337', 'gid=1337'], "verdict: pass (not captured): the proxy's own traffic is never captured (1337 from -u/--proxy-uid or $PROXY_UID)"],
    ['a virtual interface (-k)', ['-i', '*', '-b', '*', '-k', 'vnet0'], ['inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080', 'in=vnet0'], "verdict: redirect to port 15001: traffic from a virtual (VM) interface is captured as outbound (vnet0 from -k/--kube-virt-interfaces or $KUBE_VIRT_INTERFACES; * from -i/--istio-service-cidr or $ISTIO_SERVICE_CIDR); captured outbound TCP goes to the proxy's outbound listener (15001 from -p/--envoy-port, the default)"],
    ['outbound UDP that is not DNS', ['-i', '*'], ['outbound', 'udp', '10.0.0.5', '10.2.0.1:5000', ...APP], 'verdict: pass (not captured): outbound UDP is captured only for DNS (port 53) (always)'],
  ])('%s', async (_name, config, flow, line) => {
    expect(await verdict(config, flow)).toBe(line);
  });

  it('TPROXY: the mode is named once, and where the connection lands keeps the client address', async () => {
    const r = await trace([...BASE, '-m', 'TPROXY', '-b', '*', '--local', '10.0.0.5', 'inbound', 'tcp', '10.1.1.1:40000', '10.0.0.5:8080']);
    const lines = r.stdout.split('\n');
    const v = lines.find((l) => l.startsWith('verdict: ')) ?? '';
    expect(v.match(/TPROXY from -m\/--istio-inbound-interception-mode/g)).toHaveLength(1);
    expect(lines).toContain("lands on: 10.0.0.5:8080 from 10.1.1.1:40000 (TPROXY keeps the destination and the client's source address)");
    const redirect = await trace([...BASE, '-b', '*', '--local', '10.0.0.5', 'inbound', 'tcp', '10.1.1.1:40000', '10.0.0.5:8080']);
    expect(redirect.stdout).toContain('lands on: 10.0.0.5:15006 from 10.1.1.1:40000 (REDIRECT rewrote the destination; the proxy reads the original, 10.0.0.5:8080, with SO_ORIGINAL_DST)');
  });

  it('--verbose lists the rules met that did not match, with the match that failed', async () => {
    const flow = ['outbound', 'tcp', '10.0.0.5', '93.184.216.34:443', ...APP];
    const quiet = await trace([...BASE, '-i', '*', ...flow]);
    const loud = await trace([...BASE, '-i', '*', '--verbose', ...flow]);
    expect(quiet.stdout).not.toContain('nomatch');
    expect(loud.stdout).toContain('OUTPUT  nat  ISTIO_OUTPUT    #4  nomatch   -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN  (fails -m owner --uid-owner 1337)');
    expect(loud.stdout).toContain('(fails -d 127.0.0.1/32)');
    // The matched rules and the verdict are the same.
    expect(loud.stdout.split('\n').filter((l) => !l.includes(' nomatch '))).toEqual(quiet.stdout.split('\n'));
    const json = JSON.parse((await trace([...BASE, '-i', '*', '--verbose', '--output', 'json', ...flow])).stdout) as { path: { action: string; failed?: string }[] };
    expect(json.path.filter((s) => s.action === 'nomatch').map((s) => s.failed)).toContain('-m owner --uid-owner 1337');
    expect((await trace([...BASE, '--verbose=maybe', ...flow])).stderr).toContain('invalid value "maybe" for --verbose');
  });
});

describe('trace for people and for CI', () => {
  const words = ['outbound', 'tcp', '10.0.0.5:40000', '->', '93.184.216.34:443', ...APP];

  it('the protocol and direction in any case; the arrow optional (SRC DST, SRC to DST, SRC -> DST)', async () => {
    const base = await trace([...BASE, '-i', '*', ...words]);
    expect(base.code).toBe(0);
    for (const variant of [
      ['OUTBOUND', 'TCP', '10.0.0.5:40000', '93.184.216.34:443', ...APP],
      ['outbound', 'Tcp', '10.0.0.5:40000', 'to', '93.184.216.34:443', ...APP],
      ['outbound', 'tcp', '10.0.0.5:40000', 'TO', '93.184.216.34:443', ...APP],
    ]) {
      expect(await trace([...BASE, '-i', '*', ...variant])).toEqual(base);
    }
    expect((await trace([...BASE, 'inbound', 'SCTP', '10.1.1.1', '10.0.0.5:80'])).stderr).toContain('protocol "SCTP" is not tcp or udp');
  });

  it('one set of flow defaults: the command line, --flows and the library give a flow without sport port 40000, and --in/--out to flows of their direction', async () => {
    expect(DEFAULT_SPORT).toBe(40000);
    const line = { direction: 'inbound', protocol: 'TCP', src: '10.1.1.1', dst: '10.0.0.5', dport: 8080 };
    expect(validateFlow(line).flow).toEqual({ direction: 'inbound', protocol: 'tcp', src: '10.1.1.1', sport: 40000, dst: '10.0.0.5', dport: 8080 });
    expect(parseFlowWords(['inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080'])).toEqual(validateFlow(line));
    const lines = parseFlowLines(`${JSON.stringify(line)}\n${JSON.stringify({ ...line, direction: 'outbound', uid: 1000 })}\n`, { inInterface: 'eth1', outInterface: 'eth2' });
    expect(lines.map((l) => ('input' in l ? l.input.flow : l.error))).toEqual([
      { direction: 'inbound', protocol: 'tcp', src: '10.1.1.1', sport: 40000, dst: '10.0.0.5', dport: 8080, inInterface: 'eth1' },
      { direction: 'outbound', protocol: 'tcp', src: '10.1.1.1', sport: 40000, dst: '10.0.0.5', dport: 8080, uid: 1000, outInterface: 'eth2' },
    ]);
    // The CLI: the same flow from the command line and from --flows gets the same result.
    const one = JSON.parse((await trace([...BASE, '-b', '*', '--in', 'eth1', '--output', 'json', 'inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080'])).stdout) as Record<string, unknown>;
    const many = JSON.parse((await trace([...BASE, '-b', '*', '--in', 'eth1', '--flows', '-'], JSON.stringify(line))).stdout) as Record<string, unknown>;
    expect(many).toEqual({ line: 1, ...one });
    expect(one['flow']).toMatchObject({ sport: 40000, inInterface: 'eth1' });
    // A flow's own interface beats --in.
    const own = JSON.parse((await trace([...BASE, '-b', '*', '--in', 'eth1', '--output', 'json', 'inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080', 'in=eth3'])).stdout) as { flow: { inInterface: string } };
    expect(own.flow.inInterface).toBe('eth3');
  });

  it('each result echoes its flow: the text form\'s first line, the JSON form\'s "flow"', async () => {
    const text = await trace([...BASE, '-i', '*', ...words]);
    expect(text.stdout.split('\n')[0]).toBe('flow: outbound tcp 10.0.0.5:40000 -> 93.184.216.34:443 uid=1000 gid=1000 state=new');
    const json = JSON.parse((await trace([...BASE, '-i', '*', '--output', 'json', ...words])).stdout) as { flow: unknown };
    expect(json.flow).toEqual({ direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', sport: 40000, dst: '93.184.216.34', dport: 443, uid: 1000, gid: 1000 });
  });

  it('--expect VERDICT: exit 0 when met, 1 with a line saying what came instead (the result still printed)', async () => {
    const ok = await trace([...BASE, '-i', '*', '--expect', 'redirect', ...words]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe('');
    expect((await trace([...BASE, '-i', '*', '--expect', 'REDIRECT:15001', ...words])).code).toBe(0);
    const port = await trace([...BASE, '-i', '*', '--expect', 'redirect:15006', ...words]);
    expect(port.code).toBe(1);
    expect(port.stderr).toBe('istio-iptables: expected redirect:15006, got redirect to port 15001\n');
    const miss = await trace([...BASE, '-i', '*', '--expect', 'pass', ...words]);
    expect(miss.code).toBe(1);
    expect(miss.stdout).toBe(ok.stdout);
    expect(miss.stderr).toBe('istio-iptables: expected pass, got redirect to port 15001\n');
    for (const bad of ['captured', 'pass:80', 'redirect:0', 'redirect:70000']) {
      const r = await trace([...BASE, '--expect', bad, ...words]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`istio-iptables: --expect ${JSON.stringify(bad)} is not a verdict: redirect, tproxy (each optionally :PORT), pass or drop\n`);
    }
  });

  it('--flows: a line\'s "expect" beats --expect; each unmet one is reported by line, the rest run; exit 1', async () => {
    const flows = [
      { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', dst: '93.184.216.34', dport: 443, uid: 1000, expect: 'redirect:15001' },
      { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', dst: '93.184.216.34', dport: 443, uid: 1337 },
      { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', dst: '93.184.216.34', dport: 443, uid: 1000 },
      { direction: 'outbound', protocol: 'tcp', src: '10.0.0.5', dst: '93.184.216.34', dport: 443, uid: 1000, expect: 'maybe' },
    ];
    const r = await trace([...BASE, '-i', '*', '--expect', 'pass', '--flows', '-'], flows.map((f) => JSON.stringify(f)).join('\n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('istio-iptables: --flows line 3: expected pass, got redirect to port 15001\nistio-iptables: --flows line 4: expect "maybe" is not a verdict: redirect, tproxy (each optionally :PORT), pass or drop\n');
    const out = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { line: number; verdict?: string });
    expect(out.map((o) => [o.line, o.verdict])).toEqual([
      [1, 'redirect'],
      [2, 'pass'],
      [3, 'redirect'],
      [4, undefined],
    ]);
    const good = await trace([...BASE, '-i', '*', '--flows', '-'], flows.slice(0, 3).map((f) => JSON.stringify(f)).join('\n'));
    expect(good.code).toBe(0);
  });

  it('--output svg and mermaid draw one flow: with --flows they are refused', async () => {
    for (const output of ['svg', 'mermaid']) {
      const r = await trace([...BASE, '-i', '*', '--output', output, '--flows', '-'], '');
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`istio-iptables: --output ${output} draws one flow: give it on the command line, not with --flows\n`);
    }
    const svg = await trace([...BASE, '-i', '*', '--output', 'svg', ...words]);
    expect(svg.code).toBe(0);
    expect(svg.stdout).toMatch(/^<svg [^>]*>\n/);
    expect(svg.stdout).toContain('ISTIO_REDIRECT #1: redirect');
  });
});
