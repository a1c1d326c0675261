import { GO_FALSE, GO_TRUE } from '../config/gobool.js';
import type { RawInput } from '../config/parse.js';
import type { OptionKey } from '../config/options.js';
import { quickBackend } from './detect.js';
import type { Fact } from '../platform/platform.js';

/** Bound on waiting for the xtables lock (legacy backend), in seconds; part of every restore command. */
export const LOCK_WAIT_SECONDS = 30;

/** The command line of a restore adding to what is there (fed the payload on stdin). */
export function restoreCommand(binary: string, lockWaitSeconds = LOCK_WAIT_SECONDS): string[] {
  return [binary, '--noflush', `--wait=${lockWaitSeconds}`];
}

/**
 * The restore commands a run will start on its fresh path (apply/fresh.ts), from the command line
 * and environment as args.ts quickRaw reads them, with none of the program loaded beyond the
 * flag table, so that the entrypoint can
 * start them while the rest loads (they wait for their payload on stdin). Empty whenever the run
 * might do anything else: a dry run, cleanup, validation, a namespace flag, a forced backend, --output,
 * a deadline of its own (--run-timeout), legacy tables present. The facts are the program's
 * (apply/facts.ts), read the same way. (A command line quickRaw cannot read gets no guess at
 * all.) It is a guess that is safe either
 * way: a command the run does not claim gets an empty stdin and exits having changed nothing, and
 * a command it needs that was not started is started then.
 */
export function earlyCommands(
  raw: RawInput,
  legacy: () => Fact<boolean | undefined>,
  ipv6Detected: (dualStack: boolean) => boolean,
): string[][] {
  const value = (k: OptionKey) => raw.values[k];
  const isTrue = (k: OptionKey) => value(k) === true || GO_TRUE.has(String(value(k)).trim());
  // Anything but a clear "false" (or absent) counts as on: then no guess is made.
  const maybeOn = (k: OptionKey) => value(k) !== undefined && value(k) !== false && !GO_FALSE.has(String(value(k)).trim());
  if ((['dryRun', 'cleanupOnly', 'skipRuleApply', 'runValidation', 'nativeNftables', 'forceApply'] as const).some(maybeOn)) return [];
  if ((value('networkNamespace') ?? '') !== '' || (value('forceIptablesBinary') ?? '') !== '') return [];
  // --output without a dry run is an error (cli.ts): nothing will be applied.
  if (value('output') !== undefined) return [];
  // Started with the default bound: only a run with the default deadline can claim them (they end before it does).
  if (value('runTimeoutMs') !== undefined) return [];
  const quick = quickBackend(undefined, legacy());
  if (quick === undefined) return [];
  const enableIpv6 = value('enableIpv6') === undefined ? ipv6Detected(isTrue('dualStack')) : isTrue('enableIpv6');
  const commands = [restoreCommand(quick.backend.restore.ipv4)];
  if (enableIpv6) commands.push(restoreCommand(quick.backend.restore.ipv6));
  // No `ip`: the entrypoint does the routing steps over netlink itself (platform/quickjs/netlink.ts).
  return commands;
}
