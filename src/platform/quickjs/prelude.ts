/**
 * The entrypoint's prelude: a small script the runtime runs before the program (native/host.c).
 * It starts the restore and `ip -batch` commands the run will need (apply/early.ts decides which), so that their
 * start-up (~1 ms: loading their libraries and extensions) overlaps the program's; they wait for
 * the payload on stdin. Anything unexpected here only means nothing is started early.
 */
import { host } from '../host.js';
import { earlyCommands } from '../../apply/early.js';
import { hostAddresses, ipv6FromAddresses } from '../../config/addresses.js';
import { DEFAULT_TIMEOUT_MS } from '../../apply/runner.js';
import { startWaiting } from './early.js';

if (host !== undefined) {
  const h = host;
  try {
    const readProc = (path: string): string | undefined => {
      try {
        return h.readFile(path);
      } catch (err) {
        return (err as { code?: string }).code === 'ENOENT' && h.exists('/proc/net/dev') ? '' : undefined;
      }
    };
    const ipv6 = (dualStack: boolean) => ipv6FromAddresses(hostAddresses(), dualStack);
    for (const argv of earlyCommands(h.argv, h.env, readProc, ipv6)) startWaiting(h, argv, DEFAULT_TIMEOUT_MS);
  } catch {
    // Nothing started early; the run starts what it needs itself.
  }
}
