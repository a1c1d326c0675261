import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OPTIONS, OPTION_KEYS, type OptionKey } from '../src/config/options.js';
import { join } from 'node:path';
import { execa } from 'execa';
import { ROOT, runCli } from './support/cli.js';
import { ConfigError, configFromObject, fixedHost, type Config, type ConfigInput } from '../src/index.js';
import type { ValueName } from '../src/config/values.js';

/**
 * Property: whatever string reaches any option, by flag or env var, either the run is rejected
 * (exit 1, nothing on stdout) or every line it prints belongs to the restore grammar, with one
 * token per value. No newline, space, quote or comment from a value can ever reach restore text.
 */
const STRING_OPTIONS = OPTION_KEYS.filter((k) => OPTIONS[k].kind === 'string' && k !== 'output');

const PIECES = ['80', '15001', '*', ',', ' ', '\n', '\r', '\t', '"', "'", '-j', 'ACCEPT', 'DROP', '10.0.0.0/8', '::1/128', 'fd00::', 'eth0', 'lo', '#', '!', ';', '$(', ')', '`', 'COMMIT', '-A', 'OUTPUT', '*nat', '\u0000', '\u00a0', 'java', '1337', '/', ':', '.', '+', '-', '=', '\\'];

const hostile = fc.oneof(
  fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 8 }).map((a) => a.join('')),
  fc.string({ unit: 'binary', maxLength: 24 }),
);

const LINE = /^(?:\*(?:filter|mangle|nat|raw)|COMMIT|-N ISTIO_[A-Z_]+|-[AI] [A-Z_]+(?: \d+)?(?: [A-Za-z0-9_.:/,+@!-]+)+)$/;

function checkOutput(stdout: string): void {
  const doc = JSON.parse(stdout) as { iptablesRestore: string | null; ip6tablesRestore: string | null; ipCommands: string[][] };
  for (const payload of [doc.iptablesRestore, doc.ip6tablesRestore]) {
    if (payload === null) continue;
    expect(payload.endsWith('COMMIT\n')).toBe(true);
    for (const line of payload.slice(0, -1).split('\n')) expect(line).toMatch(LINE);
  }
  for (const argv of doc.ipCommands) for (const a of argv) expect(a).toMatch(/^[A-Za-z0-9_.:/-]+$/);
}

async function property(key: OptionKey, value: string, via: 'flag' | 'env'): Promise<void> {
  const spec = OPTIONS[key];
  const base = ['-n', '--output', 'json', '--enable-ipv6=true', '-b', '*', '--redirect-dns', '--dns-servers', '10.0.0.10'];
  const env = via === 'env' && spec.env[0] !== undefined ? { [spec.env[0]]: value } : {};
  const args = via === 'flag' || spec.env[0] === undefined ? [...base, `--${spec.long}`, value] : base;
  const r = await runCli(args, env);
  if (r.code !== 0) {
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    return;
  }
  checkOutput(r.stdout);
}

/** The list kinds of value, and those whose items are numbers in the typed form. */
const LISTS: readonly ValueName[] = ['portList', 'portRangeList', 'inboundPorts', 'outboundCidrs', 'excludeCidrs', 'interfaceList', 'uidList', 'gidList', 'ownerGroupsInclude', 'ownerGroupsExclude', 'dnsServers', 'logCallers'];
const NUMERIC: readonly ValueName[] = ['portList', 'portRangeList', 'inboundPorts', 'uidList', 'gidList', 'ownerGroupsInclude', 'ownerGroupsExclude'];
const LIST_OPTIONS = OPTION_KEYS.filter((k) => LISTS.includes(OPTIONS[k].value));

/**
 * One list item in both forms: a number and its decimal text, or a string that the text form's
 * splitting leaves as it is (no comma, no spaces around it, not empty, not the lone "*" that the
 * text form reads as "all").
 */
const item = (numeric: boolean): fc.Arbitrary<{ typed: number | string; text: string }> =>
  fc.oneof(
    ...(numeric ? [fc.oneof(fc.integer({ min: -2, max: 70_000 }), fc.constantFrom(0, 1, 65535, 65536, 4294967294, 4294967295)).map((n) => ({ typed: n, text: String(n) }))] : []),
    fc
      .array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 4 })
      .map((a) => a.join(''))
      .filter((t) => !t.includes(',') && t.trim() === t && t !== '' && t !== '*')
      .map((t) => ({ typed: t, text: t })),
  );

function outcome(values: Record<string, unknown>): Config | 'refused' {
  try {
    return configFromObject(values as ConfigInput, fixedHost({ proxyUid: 1337, ipv6: true, dnsServers: { ipv4: ['10.0.0.10'], ipv6: [] } }));
  } catch (err) {
    if (err instanceof ConfigError) return 'refused';
    throw err;
  }
}

describe('a typed list and its text are one reading', () => {
  it('every list option: an array of items and the same items comma-separated are both refused, or give the same configuration', () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...LIST_OPTIONS).chain((key) => fc.tuple(fc.constant(key), fc.array(item(NUMERIC.includes(OPTIONS[key].value)), { maxLength: 5 }))),
        ([key, items]) => {
          const typed = outcome({ [key]: items.map((i) => i.typed) });
          const text = outcome({ [key]: items.map((i) => i.text).join(',') });
          expect(typed, `${key}: ${JSON.stringify(items)}`).toEqual(text);
          if (typed !== 'refused' && items.length > 0) accepted++;
        },
      ),
      { numRuns: 2000 },
    );
    // Not vacuous: non-empty lists were accepted too, not only refused alike.
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('hostile values never reach restore text', () => {
  it.each(['flag', 'env'] as const)('through %ss', async (via) => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...STRING_OPTIONS), hostile, async (key, value) => property(key, value, via)),
      { numRuns: 600 },
    );
  });

  it('the grammar check is not vacuous: valid values pass it and produce rules', async () => {
    const r = await runCli(['-n', '--output', 'json', '-b', '80', '-i', '10.0.0.0/8']);
    expect(r.code).toBe(0);
    checkOutput(r.stdout);
    expect(JSON.parse(r.stdout).iptablesRestore).toContain('-A ISTIO_INBOUND -p tcp --dport 80 -j ISTIO_IN_REDIRECT');
    expect('-A OUTPUT -j ACCEPT\n-A X').not.toMatch(LINE);
    expect('-A OUTPUT -d "10.0.0.0/8" -j RETURN').not.toMatch(LINE);
  });
});

/*
 * The same property through the init container's entrypoint (the QuickJS runtime, a process per
 * run), and a differential: for the same value both runtimes accept or reject alike and print
 * the same. A value reaches a process as UTF-8 without NUL (what execve can carry), so both sides
 * get it in that form.
 */
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const carried = (value: string): string => Buffer.from(value, 'utf8').toString('utf8');

async function differential(key: OptionKey, raw: string, via: 'flag' | 'env'): Promise<void> {
  fc.pre(!raw.includes('\u0000'));
  const value = carried(raw);
  const spec = OPTIONS[key];
  const base = ['-n', '--output', 'json', '--enable-ipv6=true', '-b', '*', '--redirect-dns', '--dns-servers', '10.0.0.10'];
  const env = via === 'env' && spec.env[0] !== undefined ? { [spec.env[0]]: value } : {};
  const args = via === 'flag' || spec.env[0] === undefined ? [...base, `--${spec.long}`, value] : base;
  const [node, entry] = await Promise.all([
    runCli(args, env),
    execa(ENTRYPOINT, args, { reject: false, env: { PATH: process.env['PATH'] ?? '', ...env }, extendEnv: false, timeout: 30_000 }),
  ]);
  const what = `${via} ${spec.long}=${JSON.stringify(value)}`;
  expect(entry.exitCode, `${what}\n${entry.stderr}`).toBe(node.code);
  expect(entry.stdout, what).toBe(node.stdout.replace(/\n$/, ''));
  if (entry.exitCode !== 0) {
    expect(entry.exitCode).toBe(1);
    expect(entry.stdout).toBe('');
    expect(entry.stderr.trimEnd().split('\n'), what).toHaveLength(1);
    expect(entry.stderr.trimEnd(), what).toBe(node.stderr.trimEnd());
  } else {
    checkOutput(entry.stdout);
  }
}

describe('through the entrypoint binary too: hostile values never reach output, and both runtimes agree', () => {
  it.each(['flag', 'env'] as const)('through %ss', async (via) => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...STRING_OPTIONS), hostile, async (key, value) => differential(key, value, via)),
      { numRuns: 300 },
    );
  }, 120_000);

  it('the differential is not vacuous: a valid and an invalid value, each alike on both', async () => {
    await differential('inboundPorts', '80,8080', 'flag');
    await differential('inboundPorts', '80x', 'env');
    const r = await execa(ENTRYPOINT, ['-n', '--output', 'json', '--enable-ipv6=false', '-b', '80x'], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/invalid value "80x" for -b\/--istio-inbound-ports/);
  });
});
