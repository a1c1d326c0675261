import { describe, expect, it } from 'vitest';
import { conformanceCases, runCli } from './support/cli.js';
import { MODES } from './support/modes.js';
import { OPTIONS, type OptionKey } from '../src/config/options.js';
import type { DryRunJson } from '../src/render/dryrun.js';
import { explainComment } from '../src/render/explain.js';

/**
 * Provenance (issue 20): every rule and routing step of every golden mode and conformance case
 * says which options and values made it and why; `--dry-run --explain` prints that as a `#` line
 * above each rule without changing a byte of the rest; the chain graph and trace pictures in
 * Mermaid are kept under snapshots.
 */

const CASES: [string, readonly string[]][] = [
  ...Object.entries(MODES).map(([name, args]) => [`mode ${name}`, args.filter((a, i) => !(a === 'json' && args[i - 1] === '--output') && a !== '--output')] as [string, readonly string[]]),
  ...conformanceCases().map((c) => [`${c.suite} ${c.name}`, c.args] as [string, readonly string[]]),
];

type Explained = NonNullable<DryRunJson['explain']>;

/**
 * Options whose value is written into the rules they make: such a rule must carry the value (a
 * port, an address, an interface, an owner) as written, so provenance cannot name the wrong one.
 */
const VALUE_IN_RULE: ReadonlySet<OptionKey> = new Set(['inboundPortsExclude', 'outboundExcludeCidrs', 'excludeInterfaces', 'kubeVirtInterfaces', 'proxyUids', 'proxyGids', 'outboundPorts', 'outboundPortsExclude', 'inboundTunnelPort', 'proxyPort', 'inboundCapturePort', 'outboundOwnerGroupsExclude']);

/** What is wrong with an explanation: a rule or step without a purpose, an unknown option, a value not in its rule. */
function provenanceProblems(e: Explained, payloadRules: readonly string[]): string[] {
  const problems: string[] = [];
  const check = (what: string, text: string, purpose: unknown, options: unknown): void => {
    if (typeof purpose !== 'string' || purpose.trim() === '') problems.push(`${what}: no purpose`);
    if (!Array.isArray(options)) {
      problems.push(`${what}: no options list`);
      return;
    }
    for (const o of options as { key: OptionKey; flag: string; value: string }[]) {
      if (!(o.key in OPTIONS)) problems.push(`${what}: unknown option ${o.key}`);
      else if (!o.flag.endsWith(`--${OPTIONS[o.key].long}`)) problems.push(`${what}: flag ${o.flag} is not ${o.key}'s`);
      else if (VALUE_IN_RULE.has(o.key) && !text.split(' ').some((t) => t === o.value || t.split(',').includes(o.value) || t === `${o.value}/32` || t === `${o.value}/128`)) problems.push(`${what}: ${o.key}=${o.value} is not in the rule`);
    }
  };
  for (const r of e.rules) check(r.rule, r.rule, r.purpose, r.options);
  for (const s of e.routes) check(s.argv.join(' '), s.argv.join(' '), s.purpose, s.options);
  // Every rule of the payloads is explained.
  const explained = new Set(e.rules.map((r) => r.rule));
  for (const rule of payloadRules) if (!explained.has(rule)) problems.push(`${rule}: not explained`);
  return problems;
}

const ruleLines = (payload: string | null): string[] => (payload ?? '').split('\n').filter((l) => l.startsWith('-A ') || l.startsWith('-I '));

async function explainedJson(args: readonly string[]): Promise<DryRunJson> {
  const r = await runCli([...args, '--dry-run', '--output', 'json', '--explain']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as DryRunJson;
}

describe('every rule and routing step has provenance', () => {
  it.each(CASES)('%s', async (_name, args) => {
    const doc = await explainedJson(args);
    expect(doc.explain).toBeDefined();
    const e = doc.explain as Explained;
    expect(e.rules.length).toBeGreaterThan(0);
    expect(e.routes).toHaveLength(doc.ipCommands.length);
    expect(provenanceProblems(e, [...ruleLines(doc.iptablesRestore), ...ruleLines(doc.ip6tablesRestore)])).toEqual([]);
  });

  it('the check fails on a rule without provenance, an unknown option, a value not in its rule, an unexplained rule', async () => {
    const doc = await explainedJson(MODES['sidecar-redirect'] ?? []);
    const e = doc.explain as Explained;
    const [first, ...rest] = e.rules;
    if (first === undefined) throw new Error('no rules');
    const exclude = e.rules.find((r) => r.options.some((o) => o.key === 'inboundPortsExclude'));
    if (exclude === undefined) throw new Error('no -d rule');
    const broken: Explained = {
      routes: e.routes,
      rules: [
        { ...first, purpose: '' },
        { ...first, options: [{ key: 'noSuchOption' as OptionKey, flag: '--x', env: [], value: '1', default: false }] },
        { ...exclude, options: exclude.options.map((o) => ({ ...o, value: '15091' })) },
        ...rest.slice(1),
      ],
    };
    const problems = provenanceProblems(broken, [...ruleLines(doc.iptablesRestore), '-A ISTIO_OUTPUT -j NOWHERE']);
    expect(problems).toContain(`${first.rule}: no purpose`);
    expect(problems).toContain(`${first.rule}: unknown option noSuchOption`);
    expect(problems).toContain(`${exclude.rule}: inboundPortsExclude=15091 is not in the rule`);
    expect(problems).toContain('-A ISTIO_OUTPUT -j NOWHERE: not explained');
  });

  it('the JSON names each option by key, flag, variables and value, and says when the value is the default', async () => {
    const e = (await explainedJson(MODES['sidecar-redirect'] ?? [])).explain as Explained;
    expect(e.rules.find((r) => r.rule === '-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN')).toEqual({
      family: 'both',
      table: 'nat',
      chain: 'ISTIO_INBOUND',
      rule: '-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN',
      purpose: 'inbound port excluded from capture',
      options: [{ key: 'inboundPortsExclude', flag: '-d/--istio-local-exclude-ports', env: ['ISTIO_LOCAL_EXCLUDE_PORTS'], value: '15090', default: false }],
    });
    expect(e.rules.find((r) => r.rule === '-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001')?.options).toEqual([{ key: 'proxyPort', flag: '-p/--envoy-port', env: [], value: '15001', default: true }]);
    expect(e.rules.find((r) => r.rule === '-A OUTPUT -j ISTIO_OUTPUT')).toMatchObject({ purpose: 'locally generated traffic enters ISTIO_OUTPUT', options: [] });
  });
});

describe('--dry-run --explain', () => {
  const variants: [string, readonly string[]][] = [
    ['iptables', []],
    ['nft', ['--native-nftables']],
    ['nft sets', ['--native-nftables', '--nft-sets']],
  ];
  it.each(CASES.flatMap(([name, args]) => variants.map(([v, extra]) => [`${name} (${v})`, [...args, ...extra]] as [string, readonly string[]])))(
    '%s: a # line above each rule and routing step; without them, the plain dry run byte for byte',
    async (_name, args) => {
      const [plain, explained] = await Promise.all([runCli([...args, '--dry-run']), runCli([...args, '--dry-run', '--explain'])]);
      expect(plain.code).toBe(0);
      expect(explained.code, explained.stderr).toBe(0);
      expect(explained.stderr).toBe(plain.stderr);
      const lines = explained.stdout.split('\n');
      const added = new Set<number>();
      lines.forEach((line, i) => {
        const next = lines[i + 1] ?? '';
        if (line.startsWith('# ') && /^(?:-A |-I |add rule |insert rule |ip )/.test(next)) added.add(i);
      });
      // Every rule line has its comment right above it.
      lines.forEach((line, i) => {
        if (/^(?:-A |-I |add rule |insert rule |ip )/.test(line)) expect(added.has(i - 1), `no # line above ${line}`).toBe(true);
      });
      expect(lines.filter((_, i) => !added.has(i)).join('\n')).toBe(plain.stdout);
      for (const i of added) expect(lines[i]).toMatch(/^# [\x20-\x7e]+ \((?:always|[^()]+ from [^()]+)\)$/);
    },
  );

  it('the comment names the flag (short and long), the variables, the value and the purpose', async () => {
    const r = await runCli([...(MODES['sidecar-redirect'] ?? []), '--dry-run', '--explain']);
    expect(r.stdout).toContain('# inbound port excluded from capture (15021 from -d/--istio-local-exclude-ports or $ISTIO_LOCAL_EXCLUDE_PORTS)\n-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN\n');
    expect(r.stdout).toContain('# localhost is never captured (127.0.0.1/32 from --ipv4-loopback-cidr or $ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR, the default)\n-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN\n');
    const tproxy = await runCli([...(MODES['sidecar-tproxy'] ?? []), '--dry-run', '--explain']);
    expect(tproxy.stdout).toContain('# packets with the TPROXY mark look up the TPROXY routing table (TPROXY from -m/--istio-inbound-interception-mode or $ISTIO_INBOUND_INTERCEPTION_MODE; 1337 from -t/--istio-inbound-tproxy-mark or $ISTIO_INBOUND_TPROXY_MARK, the default; 133 from -r/--istio-inbound-tproxy-route-table or $ISTIO_INBOUND_TPROXY_ROUTE_TABLE, the default)\nip -4 rule add fwmark 1337 lookup 133\n');
  });

  it('a comment is one line of printable ASCII or nothing: no value can end it and start a rule', () => {
    expect(explainComment({ purpose: 'inbound port excluded from capture', options: [{ key: 'inboundPortsExclude', value: '15090' }] })).toBe(
      '# inbound port excluded from capture (15090 from -d/--istio-local-exclude-ports or $ISTIO_LOCAL_EXCLUDE_PORTS)',
    );
    // A value with a line break is quoted, escaped: still one line.
    expect(explainComment({ purpose: 'x', options: [{ key: 'inboundPortsExclude', value: '80\n-A OUTPUT -j ACCEPT' }] })).toBe(
      '# x ("80\\n-A OUTPUT -j ACCEPT" from -d/--istio-local-exclude-ports or $ISTIO_LOCAL_EXCLUDE_PORTS)',
    );
    // Anything else that is not printable ASCII is refused.
    expect(() => explainComment({ purpose: 'x', options: [{ key: 'excludeInterfaces', value: 'eth\u00e9' }] })).toThrow(/refusing to render unsafe comment/);
    expect(() => explainComment({ purpose: 'x\nCOMMIT', options: [] })).toThrow(/refusing to render unsafe comment/);
    expect(() => explainComment({ purpose: 'x\r', options: [] })).toThrow(/refusing to render unsafe comment/);
  });

  it('nft sets: one line for several rules names all their values', async () => {
    const r = await runCli([...(MODES['sidecar-redirect'] ?? []), '-x', '10.96.0.0/12,192.168.0.0/16', '--native-nftables', '--nft-sets', '--dry-run', '--explain']);
    expect(r.stdout).toContain(
      '# localhost is never captured; outbound destination excluded from capture (127.0.0.1/32 from --ipv4-loopback-cidr or $ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR, the default; 10.96.0.0/12,192.168.0.0/16 from -x/--istio-service-exclude-cidr or $ISTIO_SERVICE_EXCLUDE_CIDR)\n' +
        'add rule inet istio-proxy-nat istio-output ip daddr { 127.0.0.1/32, 10.96.0.0/12, 192.168.0.0/16 } counter return\n',
    );
  });
});

describe('Mermaid pictures under snapshots', () => {
  it.each(Object.entries(MODES).filter(([name]) => !name.endsWith('-json')))('chain graph of %s', async (name, args) => {
    const r = await runCli([...args, '--dry-run', '--output', 'mermaid']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^flowchart LR\n/);
    await expect(r.stdout).toMatchFileSnapshot(`__snapshots__/mermaid/plan-${name}.mmd`);
  });

  const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=false', '--local', '10.0.0.5'];
  it.each([
    ['redirect-inbound', ['-m', 'REDIRECT', 'inbound', 'tcp', '10.1.1.1:40000', '10.0.0.5:8080']],
    ['redirect-outbound', ['-m', 'REDIRECT', 'outbound', 'tcp', '10.0.0.5:40000', '93.184.216.34:443', 'uid=1000', 'gid=1000']],
    ['tproxy-inbound', ['-m', 'TPROXY', 'inbound', 'tcp', '10.1.1.1:40000', '10.0.0.5:8080']],
    ['tproxy-outbound', ['-m', 'TPROXY', 'outbound', 'tcp', '10.0.0.5:40000', '93.184.216.34:443', 'uid=1000', 'gid=1000']],
    ['excluded-port-verbose', ['-m', 'REDIRECT', '--verbose', 'inbound', 'tcp', '10.1.1.1:40000', '10.0.0.5:15090']],
  ])('trace %s', async (name, flow) => {
    const r = await runCli(['trace', ...SIDECAR, '--output', 'mermaid', ...flow]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^flowchart TD\n/);
    await expect(r.stdout).toMatchFileSnapshot(`__snapshots__/mermaid/trace-${name}.mmd`);
  });
});
