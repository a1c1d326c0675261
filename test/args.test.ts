import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quickRaw, rawFromArgs } from '../src/args.js';
import { OPTIONS, OPTION_KEYS } from '../src/config/options.js';

/**
 * yargs parses the command line (rawFromArgs); the entrypoint's prelude reads it without yargs
 * (quickRaw, the init container's hot path; see src/args.ts). Property: whenever the prelude's
 * reading applies, it gives exactly what yargs gives.
 */
const names = OPTION_KEYS.flatMap((k) => {
  const spec = OPTIONS[k] as { long: string; short?: string; kind: 'string' | 'boolean' };
  return [{ name: `--${spec.long}`, kind: spec.kind }, ...(spec.short ? [{ name: `-${spec.short}`, kind: spec.kind }] : [])];
});

const value = fc.oneof(fc.constantFrom('', '*', '80', '15001,15002', '"quoted"', "'single'", '-5s', '--x', 'a b', 'x\ny', '=', '10.0.0.0/8'), fc.string({ maxLength: 12 }));
const boolValue = fc.constantFrom(undefined, '1', 't', 'true', 'TRUE', '0', 'f', 'false', 'False');

const flag = fc.tuple(fc.constantFrom(...names), value, boolValue, fc.boolean()).map(([n, v, b, joined]) => {
  if (n.kind === 'boolean') return b === undefined ? [n.name] : [`${n.name}=${b}`];
  return joined && n.name.startsWith('--') ? [`${n.name}=${v}`] : [n.name, v];
});

describe("the entrypoint's flag reading agrees with yargs", () => {
  it('for random sequences of our flags', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(flag, { maxLength: 8 }), fc.boolean(), async (flags, programName) => {
        const args = [...(programName ? ['istio-iptables'] : []), ...flags.flat()];
        const env = { ISTIO_INBOUND_PORTS: '9090', ISTIO_META_DNS_CAPTURE: 'true' };
        const quick = quickRaw(args, env);
        expect(quick).toBeDefined();
        expect(await rawFromArgs(args, env)).toEqual(quick);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves --help, unknown flags and stray words to yargs', () => {
    expect(quickRaw(['--help'], {})).toBeUndefined();
    expect(quickRaw(['-b', '80', '--nope'], {})).toBeUndefined();
    expect(quickRaw(['-b', '80', 'stray'], {})).toBeUndefined();
    expect(quickRaw(['-b', '80', '--', '-p', '1'], {})).toBeUndefined();
  });

  it('throws for a bad boolean or a missing value even after an argument yargs must read', () => {
    expect(() => quickRaw(['--nope', '--redirect-dns=maybe'], {})).toThrow(/"maybe" for --redirect-dns: expected true or false/);
    expect(() => quickRaw(['stray', '-b'], {})).toThrow(/flag needs an argument: -b\/--istio-inbound-ports/);
  });
});

describe('environment variable names in the option table', () => {
  // Istio reads a flag's variable by its long name upper-cased, `-` as `_`; these differ on purpose.
  const EXCEPTIONS: Record<string, readonly string[]> = {
    proxyPort: [], // #2: ENVOY_PORT is not read
    output: [], // ours, not Istio's: no variable
    explain: [], // ours: output only, no variable (a pod's environment has no say in what a dry run prints)
    outboundOwnerGroups: ['ISTIO_OUTBOUND_OWNER_GROUPS'],
    outboundOwnerGroupsExclude: ['ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'],
    ipv4LoopbackCidr: ['ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
    redirectDns: ['ISTIO_META_DNS_CAPTURE', 'REDIRECT_DNS'],
    dropInvalid: ['INVALID_DROP', 'DROP_INVALID'],
    dualStack: ['ISTIO_DUAL_STACK', 'DUAL_STACK'],
    // Istio's global log flags (pkg/log, --vklog from the cobra root) have no variables.
    logAsJson: [],
    logTargets: [],
    logCaller: [],
    logStacktraceLevel: [],
    vklog: [],
  };
  it.each(OPTION_KEYS)('%s', (key) => {
    const spec = OPTIONS[key];
    expect(spec.env).toEqual(EXCEPTIONS[key] ?? [spec.long.toUpperCase().replaceAll('-', '_')]);
  });
});
