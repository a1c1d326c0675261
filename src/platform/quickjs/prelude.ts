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
import { readProcNet } from '../../apply/detect.js';
import { publishShared, type Shared } from './shared.js';
import { hostAddresses, ipv6FromAddresses } from '../../config/host.js';
import { DEFAULT_TIMEOUT_MS } from '../../apply/commands.js';
import { startEarly } from './early.js';

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
      const ipv6 = (dualStack: boolean) => ipv6FromAddresses(hostAddresses(), dualStack);
      for (const argv of earlyCommands(raw, readProcNet, ipv6)) startEarly(h, argv, DEFAULT_TIMEOUT_MS);
    }
  } catch {
    // Nothing started early; the run reads the command line and starts what it needs itself.
  }
}
