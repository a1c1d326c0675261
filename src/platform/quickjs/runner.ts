import { host, type Host } from '../host.js';
import { childEnvStrings } from './early.js';
import { commandBound, commandResult, DEFAULT_TIMEOUT_MS, LOCK_NAME, namespaceFile, notStarted, prefixFor, type ProcessRunnerOptions, type Runner, type RunResult } from '../../apply/commands.js';
import { claim, spawnCommand, type Finished } from './early.js';
import type { RouteBackend } from '../../apply/routes.js';
import { netlinkRoutes } from './netlink.js';

/*
 * apply/runner.ts for the entrypoint (scripts/bundle-quickjs.mjs puts this module in its place):
 * every command on the runtime's spawn (fork, pipes, one poll loop), and the commands the
 * prelude started early claimed by their command line.
 */

export { DEFAULT_TIMEOUT_MS, type ProcessRunnerOptions, type Runner, type RunResult } from '../../apply/commands.js';

/** The namespace locks this process holds. */
const held = new Set<string>();

export function processRunner(options: ProcessRunnerOptions = {}): Runner {
  return hostRunner(host!, options);
}

/** The same runner: here every command already takes the lightest path. */
export const spawnRunner = processRunner;

/** The routing steps over rtnetlink, in this process (no `ip`; see netlink.ts). */
export function runtimeRoutes(options: ProcessRunnerOptions = {}): RouteBackend {
  return netlinkRoutes(host!, options.namespace);
}

/** Commands on the host's spawn; input on stdin, inside the namespace when one is given. */
function hostRunner(h: Host, options: ProcessRunnerOptions): Runner {
  const prefix = prefixFor(options.namespace);
  const own = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { deadline } = options;
  // A command the prelude started early had this same environment when the runner's is ours.
  const ours = options.env === undefined || options.env === process.env;
  const env = childEnvStrings({ ...process.env, ...options.env });
  const result = (f: Finished, early: boolean, timeout: number): RunResult => {
    const r = commandResult(f, prefix, early ? own : timeout, own);
    return early ? { ...r, startedEarly: true } : r;
  };
  /**
   * The command with its stdin waiting: the prelude's (same command line, our environment and
   * default bound, which ends before a default deadline does: apply/early.ts), or a new one.
   */
  const waiting = (full: readonly string[], timeout: number): { pid: number; finished: Promise<Finished>; early: boolean } => {
    const early = ours && options.timeoutMs === undefined ? claim(full) : undefined;
    return early !== undefined ? { ...early, early: true } : { ...spawnCommand(h, full, undefined, env, timeout), early: false };
  };
  return {
    // Held until the process ends (the runtime does not close it early); taken once per process.
    lock(waitMs) {
      const netns = namespaceFile(options.namespace);
      const key = netns ?? '';
      if (!held.has(key)) {
        if (!h.lock(LOCK_NAME, Math.max(0, commandBound(waitMs, deadline)), netns)) return Promise.resolve(undefined);
        held.add(key);
      }
      return Promise.resolve(() => {});
    },
    async run(argv, input) {
      const full = [...prefix, ...argv];
      const timeout = commandBound(own, deadline);
      if (deadline !== undefined && timeout <= 0) return notStarted(deadline);
      if (input !== undefined) {
        const w = waiting(full, timeout);
        h.feed(w.pid, input);
        return result(await w.finished, w.early, timeout);
      }
      return result(await spawnCommand(h, full, null, env, timeout).finished, false, timeout);
    },
    start(argv) {
      const timeout = commandBound(own, deadline);
      if (deadline !== undefined && timeout <= 0) return { write: () => {}, end: () => Promise.resolve(notStarted(deadline)) };
      const w = waiting([...prefix, ...argv], timeout);
      return {
        write: (text) => void h.feed(w.pid, text, true),
        end: async () => {
          h.feed(w.pid, '');
          return result(await w.finished, w.early, timeout);
        },
      };
    },
  };
}
