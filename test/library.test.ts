import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { apply, ApplyError, applyOptionsFrom, buildPlan, cleanup, ConfigError, configFromArgs, diff, type CommandRunner, configFromObject, fixedHost, renderIpCommands, renderRestore, toDryRunJson, type FamilyRules, type Match, type Rule } from '../src/index.js';
import { ROOT } from './support/cli.js';

describe('library', () => {
  it('builds the same plan from an object as from the equivalent flags', async () => {
    const host = fixedHost({ proxyUid: 1337 });
    const fromObject = configFromObject({ inboundPorts: '*', mode: 'TPROXY', outboundCidrs: '*', enableIpv6: true }, host);
    const fromArgs = await configFromArgs(['istio-iptables', '-b', '*', '-m', 'TPROXY', '-i', '*', '--enable-ipv6'], {}, host);
    expect(fromObject).toEqual(fromArgs);
    expect(toDryRunJson(buildPlan(fromObject.capture))).toEqual(toDryRunJson(buildPlan(fromArgs.capture)));
  });

  it('exposes typed rules and routes, rendered per family', () => {
    const config = configFromObject({ inboundPorts: '8080', mode: 'TPROXY', enableIpv6: false }, fixedHost());
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
    configFromObject({ mode: 'REDIRECT', inboundPorts: '*', excludeInterfaces: 'eth1', inboundPortsExclude: '15020', proxyUids: '1337' }, fixedHost({ ipv6: false })).capture,
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

describe('apply, cleanup and diff with a caller-provided runner', () => {
  const plan = buildPlan(configFromObject({ inboundPorts: '*', outboundCidrs: '*' }, fixedHost({ ipv6: false })).capture);

  it('sends every command through the runner, prefixed for a namespace given by path or name', async () => {
    for (const [namespace, prefix] of [
      ['/proc/1/ns/net', ['nsenter', '--net=/proc/1/ns/net', '--']],
      ['pod-a', ['ip', 'netns', 'exec', 'pod-a']],
    ] as const) {
      const seen: (readonly string[])[] = [];
      // A host without iptables: every program is missing (exit 127, as a shell reports it).
      const runner: CommandRunner = async (argv) => {
        seen.push(argv);
        return { exitCode: 127, stdout: '', stderr: `${argv[prefix.length]}: command not found` };
      };
      await expect(diff(plan, { networkNamespace: namespace, runner })).rejects.toThrow(/no iptables found/);
      await expect(apply(plan, { networkNamespace: namespace, runner })).rejects.toBeInstanceOf(ApplyError);
      expect(seen.length).toBeGreaterThanOrEqual(6);
      expect(seen.filter((argv) => argv.slice(0, prefix.length).join(' ') !== prefix.join(' '))).toEqual([]);
      expect(seen.map((argv) => argv[prefix.length])).toContain('iptables-nft-save');
    }
  });

  it('counts a rejecting runner as a failed command, not a crash', async () => {
    const runner: CommandRunner = () => Promise.reject(new Error('connection to the node agent lost'));
    const err: unknown = await cleanup(plan, { runner }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplyError);
    expect((err as ApplyError).message).toMatch(/iptables-nft-save failed \(exit -1\): connection to the node agent lost/);
  });

  it('refuses a namespace that does not exist with the default runner, naming the option', async () => {
    const err: unknown = await apply(plan, { networkNamespace: 'iit-no-such-namespace' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(
      'invalid value "iit-no-such-namespace" for option networkNamespace: expected an existing network namespace (a name under /var/run/netns or a path), but /var/run/netns/iit-no-such-namespace does not exist',
    );
    await expect(diff(plan, { networkNamespace: '/nonexistent/ns/net' })).rejects.toThrow(/option networkNamespace/);
  });

  it('takes the CLI options from a configuration, under the option table\'s names', async () => {
    const config = await configFromArgs(['--network-namespace', 'pod-b', '--reconcile=false', '--force-apply', '--native-nftables', '--nft-sets', '--force-iptables-binary', 'legacy'], {}, fixedHost());
    expect(applyOptionsFrom(config.run)).toEqual({ networkNamespace: 'pod-b', forceIptablesBinary: 'legacy', nativeNftables: true, nftSets: true, reconcile: false, forceApply: true });
  });
});

describe('the door refuses options it does not know', () => {
  const plan = buildPlan(configFromObject({ inboundPorts: '*' }, fixedHost({ ipv6: false })).capture);
  it.each([
    ['namespace', 'networkNamespace (this option\'s name now)'],
    ['backend', 'forceIptablesBinary (this option\'s name now)'],
    ['nftables', 'nativeNftables (this option\'s name now)'],
    ['force', 'forceApply (this option\'s name now)'],
    ['netns', 'one of the options networkNamespace, runner, logger, forceIptablesBinary, timeoutMs, env, nativeNftables, nftSets, reconcile, forceApply'],
  ])('%s: a ConfigError before anything runs (never this process\'s own namespace)', async (key, expected) => {
    const runner: CommandRunner = () => Promise.reject(new Error('nothing may run'));
    const err: unknown = await apply(plan, { [key]: 'pod-a', runner } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`invalid value "pod-a" for option ${key}: expected ${expected}`);
  });
});
