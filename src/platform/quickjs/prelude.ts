/**
 * The entrypoint's prelude: a small script the runtime runs before the program (native/host.c).
 * It reads the command line and starts the restore commands the run will need
 * (apply/early.ts decides which), so that their start-up (~1 ms: loading their libraries and
 * extensions) overlaps the program's; they wait for the payload on stdin. Anything unexpected
 * here only means nothing is started early.
 *
 * The program does not load the modules the prelude has (errors, the option table, the flag
 * reader): it uses the prelude's instances (scripts/bundle-quickjs.mjs publishes them), and the
 * command line read here (shared.ts).
 */
import { host } from '../host.js';
import { quickRaw } from '../../args.js';
import { earlyCommands } from '../../apply/early.js';
import { publishShared, type Shared } from './shared.js';
import { DEFAULT_TIMEOUT_MS } from '../../apply/commands.js';
import { startEarly } from './early.js';
import { netlinkAddresses } from './netlink.js';
import { ipv6Fact, legacyFrom, LEGACY_TABLE_FILES } from '../../apply/facts.js';

if (host !== undefined) {
  const h = host;
  const shared: Shared = { rawInput: undefined };
  publishShared(shared);
  try {
    // undefined: an argument needs yargs (--help, an unknown flag); the run reads it itself. That
    // is the one time a run reads its command line twice, and the quick reading gave up before
    // producing anything: yargs's reading (cli.ts, args.ts rawFromArgs) is then the only one used.
    // Likewise when quickRaw throws (a bad value) below.
    const raw = quickRaw(h.argv, h.env);
    if (raw !== undefined) {
      shared.rawInput = raw;
      // The facts the program reads (apply/facts.ts), read here the same way, in this namespace.
      const proc = (path: string): string | undefined => {
        try {
          return h.readFile(path);
        } catch (err) {
          if ((err as { code?: string }).code === 'ENOENT') return undefined;
          throw err;
        }
      };
      const legacy = () => ({ value: legacyFrom(proc(LEGACY_TABLE_FILES[0]), proc(LEGACY_TABLE_FILES[1]), () => proc('/proc/net/dev') !== undefined), source: '/proc/net' });
      const ipv6 = (dualStack: boolean) => ipv6Fact({ value: netlinkAddresses(h, null), source: '' }, dualStack).value;
      for (const argv of earlyCommands(raw, legacy, ipv6)) startEarly(h, argv, DEFAULT_TIMEOUT_MS);
    }
  } catch {
    // Nothing started early; the run reads the command line and starts what it needs itself.
  }
}
