import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeArgs, quickFlags, rawFromArgs, rawFromArgsViaYargs } from '../src/args.js';
import { OPTIONS, OPTION_KEYS } from '../src/config/options.js';

/**
 * An ordinary run reads its flags without yargs (see src/args.ts); yargs still answers --help and
 * errors. Property: whenever the quick reading applies, it gives exactly what yargs gives.
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

describe('quick flag reading agrees with yargs', () => {
  it('for random sequences of our flags', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(flag, { maxLength: 8 }), fc.boolean(), async (flags, programName) => {
        const args = [...(programName ? ['istio-iptables'] : []), ...flags.flat()];
        expect(quickFlags(normalizeArgs(flags.flat()))).toBeDefined();
        const env = { ISTIO_INBOUND_PORTS: '9090', ISTIO_META_DNS_CAPTURE: 'true' };
        expect(await rawFromArgs(args, env)).toEqual(await rawFromArgsViaYargs(args, env));
      }),
      { numRuns: 300 },
    );
  });

  it('leaves --help, unknown flags and stray words to yargs', () => {
    expect(quickFlags(normalizeArgs(['--help']))).toBeUndefined();
    expect(quickFlags(normalizeArgs(['-b', '80', '--nope']))).toBeUndefined();
    expect(quickFlags(normalizeArgs(['-b', '80', 'stray']))).toBeUndefined();
  });
});
