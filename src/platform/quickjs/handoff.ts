/**
 * What the QuickJS entrypoint leaves to the full CLI: --help and unknown-flag errors (yargs), the
 * validation probe (TCP sockets), and trace. Each is decided before anything is applied, and the
 * process is replaced by `istio-iptables-full` (the Bun-compiled CLI, installed next to it) with
 * the same arguments and environment, so output and exit codes are the full CLI's own.
 */
import { host } from '../host.js';

/** The full CLI's file name, next to the entrypoint. */
export const FULL_CLI = 'istio-iptables-full';

/** Replace this process with the full CLI; throws (an Error naming the reason) only if that fails. */
export function handOff(reason: string): never {
  const self = host!.selfPath();
  const full = `${self.slice(0, self.lastIndexOf('/') + 1)}${FULL_CLI}`;
  try {
    return host!.exec(full, [full, ...host!.argv]);
  } catch (err) {
    throw new Error(`${reason} needs the full CLI, ${err instanceof Error ? err.message : String(err)}`);
  }
}
