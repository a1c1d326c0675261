import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { buildPlan, ConfigError, configFromArgs, configFromObject, fixedHost, renderIpCommands, renderRestore, toDryRunJson, type FamilyRules, type Match, type Rule } from '../src/index.js';
import { ROOT } from './support/cli.js';

describe('library', () => {
  it('builds the same plan from an object as from the equivalent flags', async () => {
    const host = fixedHost({ proxyUid: 1337 });
    const fromObject = configFromObject({ inboundPorts: '*', interceptionMode: 'TPROXY', serviceCidr: '*', enableIpv6: true }, host);
    const fromArgs = await configFromArgs(['istio-iptables', '-b', '*', '-m', 'TPROXY', '-i', '*', '--enable-ipv6'], {}, host);
    expect(fromObject).toEqual(fromArgs);
    expect(toDryRunJson(buildPlan(fromObject.capture))).toEqual(toDryRunJson(buildPlan(fromArgs.capture)));
  });

  it('exposes typed rules and routes, rendered per family', () => {
    const config = configFromObject({ inboundPorts: '8080', interceptionMode: 'TPROXY', enableIpv6: false }, fixedHost());
    const plan = buildPlan(config.capture);
    expect(plan.ipv6).toBeNull();
    const divert = plan.ipv4.rules.find((r) => r.chain === 'ISTIO_DIVERT' && r.target.kind === 'setMark');
    expect(divert).toMatchObject({ table: 'mangle', target: { kind: 'setMark', mark: 1337 } });
    expect(plan.ipv4.chains.get('mangle')).toEqual(['ISTIO_DIVERT', 'ISTIO_TPROXY', 'ISTIO_INBOUND']);
    expect(renderRestore(plan.ipv4)).toContain('-A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_TPROXY\n');
    expect(renderIpCommands(plan.routes)).toEqual([
      ['ip', '-4', 'rule', 'add', 'fwmark', '1337', 'lookup', '133'],
      ['ip', '-4', 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '133'],
    ]);
  });

  it('rejects bad values and unknown keys with ConfigError naming the option', () => {
    expect(() => configFromObject({ inboundPorts: '80\n-A' }, fixedHost())).toThrow(ConfigError);
    expect(() => configFromObject({ inboundPorts: '80\n-A' }, fixedHost())).toThrow(/option inboundPorts/);
    expect(() => configFromObject({ nope: '1' } as never, fixedHost())).toThrow(/option nope/);
  });

  it('has no side effects on import and resolves through the package exports map', async () => {
    const r = await execa('node', ['--input-type=module', '-e', "const m = await import('istio-iptables-ts'); console.log(typeof m.buildPlan, typeof m.apply, 'main' in m, 'createParser' in m)"], { cwd: ROOT, reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('function function false false');
  });
});

describe('restore text refuses unsafe tokens (the last line of defence after validation)', () => {
  // A plan built by hand through the library skips validation: every free-form field is checked.
  const base = buildPlan(
    configFromObject({ interceptionMode: 'REDIRECT', inboundPorts: '*', excludeInterfaces: 'eth1', localExcludePorts: '15020', proxyUid: '1337' }, fixedHost({ ipv6: false })).capture,
  );
  const withRules = (patch: (r: Rule) => Rule): FamilyRules => ({ ...base.ipv4, rules: base.ipv4.rules.map(patch) });
  const withMatch = (kind: Match['kind'], patch: (m: Match) => Match): FamilyRules =>
    withRules((r) => ({ ...r, matches: r.matches.map((m) => (m.kind === kind ? patch(m) : m)) }));
  const INJECTIONS = ['eth0 -j ACCEPT', 'eth0\n-A INPUT -j ACCEPT', 'x#', '"x"', "x'", '', 'a\tb'];

  it('renders the unpatched plan, which has each field patched below', () => {
    expect(renderRestore(base.ipv4)).toContain('-A PREROUTING -i eth1 -j RETURN\n');
    const kinds = new Set(base.ipv4.rules.flatMap((r) => r.matches.map((m) => m.kind)));
    for (const kind of ['inInterface', 'destination', 'uidOwner', 'dport'] as const) expect(kinds).toContain(kind);
    expect(base.ipv4.rules.some((r) => r.target.kind === 'jump')).toBe(true);
  });

  it.each(INJECTIONS)('refuses %j in every free-form position', (bad) => {
    const cases: FamilyRules[] = [
      withMatch('inInterface', (m) => ({ ...m, name: bad }) as Match),
      withMatch('destination', (m) => (m.kind === 'destination' ? { ...m, cidr: { ...m.cidr, address: bad } } : m)),
      withMatch('uidOwner', (m) => ({ ...m, id: bad }) as Match),
      withMatch('dport', (m) => ({ ...m, port: bad as unknown as number }) as Match),
      withRules((r) => ({ ...r, chain: bad as Rule['chain'] })),
      withRules((r) => (r.target.kind === 'jump' ? { ...r, target: { ...r.target, chain: bad as 'ISTIO_OUTPUT' } } : r)),
      { ...base.ipv4, chains: new Map([['nat', [bad as 'ISTIO_OUTPUT']]]) },
    ];
    for (const family of cases) expect(() => renderRestore(family)).toThrow(/refusing to render unsafe token/);
  });
});
