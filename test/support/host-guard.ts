import { execa } from 'execa';

/**
 * The test suite must never change the host's own network namespace (a rule left there would send
 * this machine's outbound TCP to a dead port). Global setup for every project: the host's
 * iptables (both backends, both families), its nft ruleset, and its ip rules and routes (both
 * families, every table) are read before the run, and the run fails at teardown if any of them
 * changed. Counters are left out (traffic moves them); nothing else is.
 */
const READS: readonly (readonly string[])[] = [
  ['iptables-nft-save'],
  ['ip6tables-nft-save'],
  ['iptables-legacy-save'],
  ['ip6tables-legacy-save'],
  ['nft', 'list', 'ruleset'],
  ['ip', '-4', 'rule', 'show'],
  ['ip', '-6', 'rule', 'show'],
  ['ip', '-4', 'route', 'show', 'table', 'all'],
  ['ip', '-6', 'route', 'show', 'table', 'all'],
];

/** One read, counters (and the remaining lifetime of learned routes) removed; a failing read is recorded as such. */
async function read(argv: readonly string[], prefix: readonly string[]): Promise<string> {
  const full = [...prefix, ...argv];
  const r = await execa(full[0] ?? '', full.slice(1), { reject: false, timeout: 30_000 });
  const out = String(r.stdout ?? '')
    .split('\n')
    .filter((l) => !/^# (Generated|Completed) /.test(l))
    .map((l) =>
      l
        .replace(/\[\d+:\d+\]/g, '[0:0]')
        .replace(/counter packets \d+ bytes \d+/g, 'counter')
        .replace(/ expires \d+sec/g, ''),
    )
    .join('\n');
  return `## ${argv.join(' ')} (exit ${r.exitCode ?? r.signal})\n${out}`;
}

/** The state the guard compares; `prefix` (e.g. ip netns exec NS) only for testing the guard itself. */
export async function hostNetworkState(prefix: readonly string[] = []): Promise<string> {
  const parts: string[] = [];
  for (const argv of READS) parts.push(await read(argv, prefix));
  return parts.join('\n');
}

/** A readable difference: the lines only before and only after. */
function difference(before: string, after: string): string {
  const a = before.split('\n');
  const b = after.split('\n');
  const gone = a.filter((l) => !b.includes(l)).map((l) => `- ${l}`);
  const added = b.filter((l) => !a.includes(l)).map((l) => `+ ${l}`);
  return [...gone, ...added].join('\n') || '(the same lines in another order)';
}

export default async function hostGuard(): Promise<() => Promise<void>> {
  const before = await hostNetworkState();
  return async () => {
    const after = await hostNetworkState();
    if (after !== before) throw new Error(`the test run changed the host's own network namespace:\n${difference(before, after)}`);
  };
}
