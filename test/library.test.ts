import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { apply, ApplyError, applyOptionsFrom, buildPlan, cleanup, ConfigError, configFromArgs, diff, type CommandRunner, configFromObject, fixedHost, OPTIONS, renderIpCommands, renderRestore, toDryRunJson, type ConfigInput, type FamilyRules, type Match, type OptionInput, type OptionKey, type Rule } from '../src/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { safeParse } from 'zod/v4/core';
import { rawFromArgs } from '../src/args.js';
import { parseOptions } from '../src/config/parse.js';
import { schemaOf } from '../src/config/schemas.js';
import { VALUES, type ValueName } from '../src/config/values.js';
import { ROOT } from './support/cli.js';

describe('library', () => {
  it('builds the same plan from a typed object as from the equivalent flags', async () => {
    const host = fixedHost({ proxyUid: 1337 });
    const fromObject = configFromObject({ inboundPorts: '*', mode: 'TPROXY', outboundCidrs: '*', enableIpv6: true }, host);
    const fromArgs = await configFromArgs(['istio-iptables', '-b', '*', '-m', 'TPROXY', '-i', '*', '--enable-ipv6'], {}, host);
    expect(fromObject).toEqual(fromArgs);
    expect(toDryRunJson(buildPlan(fromObject.capture))).toEqual(toDryRunJson(buildPlan(fromArgs.capture)));
  });

  it('exposes typed rules and routes, rendered per family', () => {
    const config = configFromObject({ inboundPorts: [8080], mode: 'TPROXY', enableIpv6: false }, fixedHost());
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

  it('has no side effects on import and resolves through the package exports map', async () => {
    const r = await execa('node', ['--input-type=module', '-e', "const m = await import('istio-iptables-ts'); console.log(typeof m.buildPlan, typeof m.apply, 'main' in m, 'createParser' in m)"], { cwd: ROOT, reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('function function false false');
  });
});

/**
 * Every option with a typed value (other than its default) and the flag text that means the same.
 * A mapped type over the option table: a new option fails to compile here until it has its pair.
 */
const TYPED: { readonly [K in OptionKey]: readonly [typed: OptionInput<K>, text: string | boolean | readonly string[]] } = {
  proxyPort: [15101, '15101'],
  inboundCapturePort: [15106, '15106'],
  inboundTunnelPort: [15108, '15108'],
  proxyUids: [[1337, 'istio-proxy'], '1337,istio-proxy'],
  proxyGids: [[0, 1338], '0,1338'],
  mode: ['TPROXY', 'TPROXY'],
  tproxyMark: [0x53a, '0x53A'],
  tproxyRouteTable: [4294967295, '4294967295'],
  inboundPorts: [[8080, 0, 9090], '8080, 0,9090'],
  inboundPortsExclude: [[15090, 15021], '15090,15021'],
  excludeInterfaces: [['eth1', 'veth+', 'br-x.10@y'], 'eth1,veth+,br-x.10@y'],
  outboundCidrs: [['10.0.0.0/8', { family: 'ipv6', address: 'FD00:0::', prefixLength: 8 }, '127.0.0.1/32'], '10.0.0.0/8,fd00::/8,127.0.0.1/32'],
  outboundExcludeCidrs: [[{ family: 'ipv4', address: '10.96.0.10', prefixLength: 32 }, '::ffff:1.2.3.4/128'], '10.96.0.10/32,::ffff:1.2.3.4/128'],
  outboundPorts: [[443, { first: 8000, last: 8080 }, { first: 9000, last: 9000 }], '443,8000:8080,9000:9000'],
  outboundPortsExclude: [[0, 3306], '0,3306'],
  kubeVirtInterfaces: [['vnet0'], 'vnet0'],
  outboundOwnerGroups: [['istio-proxy', 1000], 'istio-proxy,1000'],
  outboundOwnerGroupsExclude: [[65534], '65534'],
  ipv4LoopbackCidr: [{ family: 'ipv4', address: '127.0.0.0', prefixLength: 8 }, '127.0.0.0/8'],
  redirectDns: [true, true],
  captureAllDns: [true, 'true'],
  dnsServers: [['10.96.0.10', 'FD00::A'], '10.96.0.10,fd00::a'],
  dropInvalid: [true, 'T'],
  dualStack: [true, '1'],
  enableIpv6: [false, 'false'],
  dryRun: [true, true],
  explain: [true, 'true'],
  output: ['json', 'json'],
  networkNamespace: ['/proc/1/ns/net', '/proc/1/ns/net'],
  cniMode: [true, true],
  reconcile: [false, 'False'],
  cleanupOnly: [true, true],
  forceApply: [true, true],
  nativeNftables: [true, true],
  nftSets: [true, true],
  forceIptablesBinary: ['legacy', 'iptables-legacy'],
  skipRuleApply: [true, true],
  runValidation: [true, true],
  iptablesProbePort: [15102, '15102'],
  probeTimeoutMs: [1500, '1.5s'],
  runTimeoutMs: [90000, '1m30s'],
  logLevel: ['debug', 'default:debug'],
  logAsJson: [true, true],
  logTargets: [['stdout', 'stderr'], ['stdout', 'stderr']],
  logCaller: [['default', 'ambient'], 'default,ambient'],
  logStacktraceLevel: ['error', 'error'],
  vklog: [-2, '-2'],
};

/** An option's typed value, read (parseOptions) as configFromObject reads it. */
function parsedTyped<K extends OptionKey>(key: K, value: unknown) {
  return parseOptions({ values: { [key]: value } as ConfigInput, sources: {} });
}

describe('typed input (configFromObject)', () => {
  const keys = Object.keys(TYPED) as OptionKey[];

  it.each(keys)('%s: the typed value reads as its flag text does, through the flag and as text from JavaScript, and is not the default', async (key) => {
    const [typed, text] = TYPED[key];
    const args = (Array.isArray(text) ? text : [text]).map((t: string | boolean) => `--${OPTIONS[key].long}=${String(t)}`);
    const fromFlags = await rawFromArgs(args, {});
    if (fromFlags === 'help') throw new Error('help');
    const expected = parseOptions(fromFlags);
    expect(parsedTyped(key, typed)).toEqual(expected);
    expect(parsedTyped(key, text)).toEqual(expected);
    expect(expected[key]).not.toEqual(parseOptions({ values: {}, sources: {} })[key]);
  });

  it('builds from every option at once the configuration the same flags give', async () => {
    const host = fixedHost({ proxyUid: 1337, ipv6: false });
    const all = Object.fromEntries(keys.map((k) => [k, TYPED[k][0]])) as ConfigInput;
    const args = keys.flatMap((k) => {
      const text = TYPED[k][1];
      return (Array.isArray(text) ? text : [text]).map((t: string | boolean) => `--${OPTIONS[k].long}=${String(t)}`);
    });
    expect(configFromObject(all, host)).toEqual(await configFromArgs(args, {}, host));
  });

  const E = (key: OptionKey, value: string, expected: string): string => `invalid value ${value} for option ${key}: expected ${expected}`;
  const REJECTED: readonly (readonly [string, Record<string, unknown>, string])[] = [
    ['a port out of range', { proxyPort: 70000 }, E('proxyPort', '70000', 'a port 1-65535')],
    ['a port 0', { inboundCapturePort: 0 }, E('inboundCapturePort', '0', 'a port 1-65535')],
    ['a fractional port', { proxyPort: 15001.5 }, E('proxyPort', '15001.5', 'a port 1-65535')],
    ['NaN for a port', { iptablesProbePort: NaN }, E('iptablesProbePort', 'NaN', 'a port 1-65535')],
    ['a port as bad text', { proxyPort: '15001x' }, E('proxyPort', '"15001x"', 'a port 1-65535')],
    ['a mode in lower case', { mode: 'tproxy' }, E('mode', '"tproxy"', 'REDIRECT or TPROXY, upper case as Istio reads it (did you mean TPROXY?)')],
    ['a mode that is no string', { mode: 1 }, E('mode', '1', 'REDIRECT or TPROXY, upper case as Istio reads it')],
    ['a port past 65535 in a list', { inboundPorts: [80, 70000] }, E('inboundPorts', '[80,70000]', 'a list of ports 0-65535, or "*" (70000 is not a port)')],
    ['"*" among ports', { inboundPorts: ['*', 80] }, E('inboundPorts', '["*",80]', '"*" alone, or a list of ports 0-65535 ("*" cannot be mixed with ports)')],
    ['one port where a list goes', { inboundPorts: 80 }, E('inboundPorts', '80', 'a list of ports 0-65535, or "*"')],
    ['a text list as one array item', { inboundPortsExclude: ['15090,15021'] }, E('inboundPortsExclude', '["15090,15021"]', 'a list of ports 0-65535 ("15090,15021" is not a port)')],
    ['a reversed range', { outboundPorts: [{ first: 9000, last: 8000 }] }, E('outboundPorts', '[{"first":9000,"last":8000}]', 'a list of ports 0-65535 or ranges such as { first: 8000, last: 8080 } ({"first":9000,"last":8000} is neither)')],
    ['a range with another key', { outboundPortsExclude: [{ first: 1, last: 2, step: 1 }] }, E('outboundPortsExclude', '[{"first":1,"last":2,"step":1}]', 'a list of ports 0-65535 or ranges such as { first: 8000, last: 8080 } ({"first":1,"last":2,"step":1} is neither)')],
    ['two interfaces in one item', { excludeInterfaces: ['eth0,eth1'] }, E('excludeInterfaces', '["eth0,eth1"]', 'a list of interface names (1-15 characters: letters, digits, "_", "-", ".", "@"; "eth0,eth1" is not one)')],
    ['an interface carrying rules', { kubeVirtInterfaces: ['eth0 -j ACCEPT'] }, E('kubeVirtInterfaces', '["eth0 -j ACCEPT"]', 'a list of interface names (1-15 characters: letters, digits, "_", "-", ".", "@"; "eth0 -j ACCEPT" is not one)')],
    ['a CIDR of the wrong family', { outboundCidrs: [{ family: 'ipv6', address: '10.0.0.0', prefixLength: 8 }] }, E('outboundCidrs', '[{"family":"ipv6","address":"10.0.0.0","prefixLength":8}]', 'a list of CIDRs such as 10.0.0.0/8 or fd00::/8 ({"family":"ipv6","address":"10.0.0.0","prefixLength":8} is not a CIDR)')],
    ['a CIDR too long', { outboundExcludeCidrs: [{ family: 'ipv4', address: '10.0.0.0', prefixLength: 33 }] }, E('outboundExcludeCidrs', '[{"family":"ipv4","address":"10.0.0.0","prefixLength":33}]', 'a list of CIDRs such as 10.0.0.0/8 or fd00::/8 ({"family":"ipv4","address":"10.0.0.0","prefixLength":33} is not a CIDR)')],
    ['a CIDR object with a prefix in its address', { outboundCidrs: [{ family: 'ipv4', address: '10.0.0.0/8', prefixLength: 8 }] }, E('outboundCidrs', '[{"family":"ipv4","address":"10.0.0.0/8","prefixLength":8}]', 'a list of CIDRs such as 10.0.0.0/8 or fd00::/8 ({"family":"ipv4","address":"10.0.0.0/8","prefixLength":8} is not a CIDR)')],
    ['a CIDR object with another key', { outboundCidrs: [{ family: 'ipv4', address: '10.0.0.0', prefixLength: 8, negate: true }] }, E('outboundCidrs', '[{"family":"ipv4","address":"10.0.0.0","prefixLength":8,"negate":true}]', 'a list of CIDRs such as 10.0.0.0/8 or fd00::/8 ({"family":"ipv4","address":"10.0.0.0","prefixLength":8,"negate":true} is not a CIDR)')],
    ['"*" in an exclusion list', { outboundExcludeCidrs: ['*'] }, E('outboundExcludeCidrs', '["*"]', 'a list of CIDRs ("*" is not allowed for exclusions)')],
    ['a negative uid', { proxyUids: [-1] }, E('proxyUids', '[-1]', 'a list of uids: numbers 0-4294967294 or names of letters, digits, "_", "-", "." (-1 is neither)')],
    ['the "no id" uid', { proxyGids: [4294967295] }, E('proxyGids', '[4294967295]', 'a list of gids: numbers 0-4294967294 or names of letters, digits, "_", "-", "." (4294967295 is neither)')],
    ['a uid name with a shell character', { proxyUids: ['root;id'] }, E('proxyUids', '["root;id"]', 'a list of uids: numbers 0-4294967294 or names of letters, digits, "_", "-", "." ("root;id" is neither)')],
    ['65 owner groups', { outboundOwnerGroups: Array.from({ length: 65 }, (_, i) => i) }, E('outboundOwnerGroups', `[${Array.from({ length: 65 }, (_, i) => i).join(',')}]`, 'at most 64 groups (got 65)')],
    ['a mark of 0', { tproxyMark: 0 }, E('tproxyMark', '0', 'a packet mark: a number 1-4294967295')],
    ['the main routing table', { tproxyRouteTable: 254 }, E('tproxyRouteTable', '254', 'a routing table other than 254 (the "main" table: a local default route there would swallow all traffic)')],
    ['a timeout of 0 ms', { probeTimeoutMs: 0 }, E('probeTimeoutMs', '0', 'a positive number of milliseconds up to 3600000 (1h)')],
    ['an infinite timeout', { probeTimeoutMs: Infinity }, E('probeTimeoutMs', 'Infinity', 'a positive number of milliseconds up to 3600000 (1h)')],
    ['a switch as "yes"', { dryRun: 'yes' }, E('dryRun', '"yes"', 'true or false (did you mean true?)')],
    ['a switch as 1', { redirectDns: 1 }, E('redirectDns', '1', 'true or false')],
    ['a log file', { logTargets: ['stdout', '/tmp/log'] }, E('logTargets', '"/tmp/log"', 'stdout or stderr (log files are not written here)')],
    ['an unknown backend', { forceIptablesBinary: 'iptables' }, E('forceIptablesBinary', '"iptables"', 'legacy or nft (or iptables-legacy, iptables-nft)')],
    ['an unknown output', { output: 'yaml' }, E('output', '"yaml"', 'text, json, svg or mermaid')],
    ['a DNS server with a prefix', { dnsServers: ['10.96.0.10/32'] }, E('dnsServers', '["10.96.0.10/32"]', 'a list of IPv4 or IPv6 addresses ("10.96.0.10/32" is not an address: a nameserver is an address alone, such as 10.96.0.10)')],
    ['an address where a CIDR goes', { outboundExcludeCidrs: ['fd00::a'] }, E('outboundExcludeCidrs', '["fd00::a"]', 'a list of CIDRs such as 10.0.0.0/8 or fd00::/8 ("fd00::a" is an address, not a CIDR: for that address alone write fd00::a/128)')],
    ['a namespace path going up', { networkNamespace: '/var/run/netns/../../etc' }, E('networkNamespace', '"/var/run/netns/../../etc"', 'a namespace name (letters, digits, "_", "-", ".") or an absolute path such as /proc/1/ns/net')],
    ['an unknown log level', { logLevel: 'verbose' }, E('logLevel', '"verbose"', 'a level or comma-separated scope:level pairs, levels none, fatal, error, warn, info, debug ("verbose" is not one)')],
    ['a fractional verbosity', { vklog: 1.5 }, E('vklog', '1.5', 'an integer verbosity such as 0 or 9')],
    ['a loopback CIDR outside 127/8', { ipv4LoopbackCidr: { family: 'ipv4', address: '10.0.0.1', prefixLength: 32 } }, E('ipv4LoopbackCidr', '{"family":"ipv4","address":"10.0.0.1","prefixLength":32}', 'an IPv4 CIDR within 127.0.0.0/8, such as 127.0.0.1/32 (prefix /8 or longer)')],
  ];

  it.each(REJECTED)('refuses %s with a ConfigError naming the key, the value and what was expected', (_what, input, message) => {
    const err: unknown = (() => {
      try {
        configFromObject(input as ConfigInput, fixedHost());
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(message);
    expect((err as ConfigError).source).toEqual({ kind: 'option', name: Object.keys(input)[0] });
  });

  it('refuses what TypeScript refuses, and still reads the flag text a JavaScript caller gives', () => {
    // @ts-expect-error a mode is 'REDIRECT' | 'TPROXY'
    expect(() => configFromObject({ mode: 'tproxy' }, fixedHost())).toThrow(ConfigError);
    // @ts-expect-error a port is a number
    expect(configFromObject({ proxyPort: '15101' }, fixedHost()).capture.proxyPort).toBe(15101);
    // @ts-expect-error a list is an array
    expect(configFromObject({ inboundPorts: '80,443' }, fixedHost()).capture.inboundPorts).toEqual({ kind: 'list', ports: [80, 443] });
    // @ts-expect-error a switch is a boolean
    expect(configFromObject({ dryRun: 'true' }, fixedHost()).run.dryRun).toBe(true);
    // undefined is "not given", as an absent key.
    expect(configFromObject({ proxyPort: undefined, inboundPorts: [] }, fixedHost())).toEqual(configFromObject({}, fixedHost()));
  });

  it.each([
    ['proxyPrt', 'unknown option "proxyPrt": did you mean proxyPort?'],
    ['inboundport', 'unknown option "inboundport": did you mean inboundPorts?'],
    ['ProxyUid', 'unknown option "ProxyUid": did you mean proxyUids (the option of --proxy-uid)?'],
    ['envoy-port', 'unknown option "envoy-port": did you mean proxyPort (the option of --envoy-port)?'],
    ['ISTIO_INBOUND_PORTS', 'unknown option "ISTIO_INBOUND_PORTS": did you mean inboundPorts (the option of environment variable ISTIO_INBOUND_PORTS)?'],
    ['istio_service_cidr', 'unknown option "istio_service_cidr": did you mean outboundCidrs (the option of --istio-service-cidr)?'],
  ])('refuses the unknown key %s naming the nearest', (key, message) => {
    expect(() => configFromObject({ [key]: 1 } as ConfigInput, fixedHost())).toThrow(new ConfigError(undefined, key, message));
  });

  it('refuses an unknown key with nothing near by listing the keys, and TypeScript refuses it first', () => {
    // @ts-expect-error excess property check: TypeScript itself suggests the nearest key
    expect(() => configFromObject({ proxyPrt: 15001 }, fixedHost())).toThrow(/did you mean proxyPort\?/);
    expect(() => configFromObject({ frobnicate: true } as ConfigInput, fixedHost())).toThrow(/^unknown option "frobnicate": the options are the option table's keys \(proxyPort, inboundCapturePort, .*, vklog\)$/);
    for (const [bad, what] of [[null, 'null'], [[], 'an array'], ['inboundPorts=*', 'a string'], [() => 1, 'a function']] as const) {
      expect(() => configFromObject(bad as unknown as ConfigInput, fixedHost())).toThrow(`configFromObject takes an object keyed like the option table (OPTIONS), not ${what}`);
    }
  });
});

describe("docs/library.md's table of value kinds", () => {
  const docs = readFileSync(join(ROOT, 'docs', 'library.md'), 'utf8');
  const table = /<!-- value kinds: [^\n]*-->\n\| value[^\n]*\n\|---[^\n]*\n([\s\S]*?)\n<!-- value kinds: end -->/.exec(docs)?.[1] ?? '';
  const rows = table.split('\n').map((line) => {
    const cells = line.slice(2, -2).split(/ (?<!\\)\| /).map((c) => c.replaceAll('\\|', '|').replace(/^`(.*)`$/, '$1'));
    return { name: cells[0] as ValueName, typed: cells[1] ?? '', example: cells[2] ?? '', text: cells[3] ?? '' };
  });
  // ValueInputs as the API report declares it (the published types).
  const report = readFileSync(join(ROOT, 'api', 'istio-iptables-ts.d.ts'), 'utf8');
  const declared = new Map([.../export interface ValueInputs \{\n([\s\S]*?)\n\}/.exec(report)?.[1]?.matchAll(/^ {4}(\w+): (.*);$/gm) ?? []].map((m) => [m[1], m[2]]));

  it('has one row per kind of value, in the order of ValueInputs, each giving its declared type', () => {
    expect(rows.map((r) => r.name)).toEqual([...declared.keys()]);
    expect([...declared.keys()].sort()).toEqual(Object.keys(VALUES).sort());
    for (const row of rows) expect(row.typed, row.name).toBe(declared.get(row.name));
  });

  it.each(rows)('$name: the example reads as its text does', (row) => {
    const typed = safeParse(schemaOf(row.name), JSON.parse(row.example));
    const text = safeParse(schemaOf(row.name), row.text);
    expect(typed.success && text.success, `${row.example} / ${row.text}`).toBe(true);
    expect(typed.data).toEqual(text.data);
  });
});

describe('restore text refuses unsafe tokens (the last line of defence after validation)', () => {
  // A plan built by hand through the library skips validation: every free-form field is checked.
  const base = buildPlan(
    configFromObject({ mode: 'REDIRECT', inboundPorts: '*', excludeInterfaces: ['eth1'], inboundPortsExclude: [15020], proxyUids: [1337] }, fixedHost({ ipv6: false })).capture,
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
    expect(applyOptionsFrom(config.run)).toEqual({ networkNamespace: 'pod-b', forceIptablesBinary: 'legacy', nativeNftables: true, nftSets: true, reconcile: false, forceApply: true, runTimeoutMs: 60000 });
  });
});

describe('the door refuses options it does not know', () => {
  const plan = buildPlan(configFromObject({ inboundPorts: '*' }, fixedHost({ ipv6: false })).capture);
  it.each([
    ['namespace', 'networkNamespace (this option\'s name now)'],
    ['backend', 'forceIptablesBinary (this option\'s name now)'],
    ['nftables', 'nativeNftables (this option\'s name now)'],
    ['force', 'forceApply (this option\'s name now)'],
    ['netns', 'one of the options networkNamespace, runner, logger, forceIptablesBinary, timeoutMs, env, nativeNftables, nftSets, reconcile, forceApply, runTimeoutMs'],
  ])('%s: a ConfigError before anything runs (never this process\'s own namespace)', async (key, expected) => {
    const runner: CommandRunner = () => Promise.reject(new Error('nothing may run'));
    const err: unknown = await apply(plan, { [key]: 'pod-a', runner } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`invalid value "pod-a" for option ${key}: expected ${expected}`);
  });
});
