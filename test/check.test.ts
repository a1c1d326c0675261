import { describe, expect, it } from 'vitest';
import { checkOptions as withZod } from '../src/config/check.js';
import { OPTIONS, OPTION_KEYS, type OptionKey, type OptionSpec } from '../src/config/options.js';
import { checkOptions as direct } from '../src/platform/quickjs/check.js';

/*
 * The entrypoint checks option values without zod (src/platform/quickjs/check.ts, in place of
 * src/config/check.ts): both must give every value the same reading, and every refusal the same
 * option, position and message, whichever is reported first.
 */

/** Values of every shape either form takes, good and bad, for every kind of value. */
const TEXTS = [
  '', ' ', '*', ' * ', '0', '1', '80', ' 80 ', '1337', '65535', '65536', '-1', '1.5', '0x50', 'abc', '80,443', '80, 443', '80,,443', '80,x',
  '1000:2000', '2000:1000', '10.0.0.0/8', '10.0.0.1', '10.0.0.0/33', '300.1.1.1', '::/0', 'fe80::/10', '::1', 'fd00::/129', '10.0.0.0/8,::/0',
  '*,10.0.0.0/8', 'true', 'false', 'TRUE', 'True', 't', 'f', '1', 'yes', 'eth0', 'eth0,eth1', 'eth0 eth1', 'REDIRECT', 'TPROXY', 'tproxy',
  'redirect', 'json', 'text', 'svg', 'nft', 'legacy', 'iptables-nft', 'stderr', 'stdout', 'stdout,stderr', 'default:debug', 'default:info,ambient:error',
  'debug', 'bogus:info', '5s', '500ms', '1m', '0s', '-1s', '90', 'istio-proxy', 'root,1337', '1337,1338', 'x\n-A OUTPUT -j ACCEPT', 'a"b', '/var/run/netns/pod',
  '/proc/1/ns/net', '8.8.8.8,2001:4860:4860::8888', '127.0.0.53', '127.0.0.0/8', '127.0.0.6/32',
];
const TYPED: unknown[] = [0, 1, 80, 1337, 65535, 70000, -1, 1.5, Number.NaN, true, false, null, {}, [], [80], [80, 443], [80, 70000], ['80'], ['80,443'], ['eth0'], [1337], ['istio-proxy'], [true], [null]];
const VALUES = [...TEXTS, ...TYPED];

/** The value as parseOptions hands it over: a repeatable option's lone value as a list of one. */
const given = (key: OptionKey, value: unknown): unknown => (OPTIONS[key].kind === 'strings' && !Array.isArray(value) ? [value] : value);

describe('the entrypoint checks option values as zod does', () => {
  it.each(OPTION_KEYS)('%s: the same reading or the same refusal, for every value', (key) => {
    let refused = 0;
    let read = 0;
    const spec: OptionSpec = OPTIONS[key];
    // And the option's own default, as the table gives it.
    for (const value of spec.default === undefined ? VALUES : [...VALUES, spec.default]) {
      const values = { [key]: given(key, value) };
      const a = withZod([key], values);
      expect(direct([key], values), `${key} = ${JSON.stringify(value)}`).toEqual(a);
      if (a.ok) read++;
      else refused++;
    }
    // Each option both reads and refuses some of these, so both branches were compared.
    expect(read, `${spec.long}: values read`).toBeGreaterThan(0);
    expect(refused, `${spec.long}: values refused`).toBeGreaterThan(0);
  });

  it('reports the same first refusal among several, in the table order, and the same position in a list', () => {
    const keys = OPTION_KEYS.filter((k) => OPTIONS[k].value !== 'boolean');
    let compared = 0;
    for (let i = 0; i < keys.length; i++) {
      for (let j = i + 1; j < keys.length; j += 3) {
        const pair = [keys[i] as OptionKey, keys[j] as OptionKey];
        for (const bad of ['x\n-A OUTPUT', '70000', 'abc', '80,70000,x']) {
          const values = Object.fromEntries(pair.map((k) => [k, given(k, bad)]));
          const a = withZod(pair, values);
          expect(direct(pair, values), `${pair.join(' + ')} = ${JSON.stringify(bad)}`).toEqual(a);
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(100);
  });
});
