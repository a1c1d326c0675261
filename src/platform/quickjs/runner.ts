import type { Host } from '../host.js';
import { commandBound, commandResult, DEFAULT_TIMEOUT_MS, notStarted, type Runner, type RunResult } from '../../apply/commands.js';
import type { Namespace, RunnerOptions } from '../platform.js';
import { childEnvStrings, claim, spawnCommand, type Finished } from './early.js';

/*
 * The entrypoint's runner: every command on the runtime's spawn (fork, pipes, one poll loop),
 * inside the target namespace when one is given (the child enters it by the namespace's descriptor
 * between fork and exec: no nsenter), and the commands the prelude started early claimed by their
 * command line.
 */

/**
 * Commands on the host's spawn; input on stdin, inside the namespace when one is given; each
 * bounded by its timeout and what is left of the run's deadline.
 */
export function hostRunner(h: Host, ns: Namespace | undefined, options: RunnerOptions = {}): Runner {
  const own = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { deadline } = options;
  // A command the prelude started early had this same environment when the runner's is ours.
  const ours = options.env === undefined || options.env === process.env;
  const env = childEnvStrings({ ...process.env, ...options.env });
  const result = (f: Finished, early: boolean, timeout: number): RunResult => {
    const r = commandResult(f, [], early ? own : timeout, own);
    return early ? { ...r, startedEarly: true } : r;
  };
  /**
   * The command with its stdin waiting: the prelude's (same command line, our namespace,
   * environment and default bound, which ends before a default deadline does: apply/early.ts), or
   * a new one.
   */
  const waiting = (argv: readonly string[], timeout: number): { pid: number; finished: Promise<Finished>; early: boolean } => {
    const early = ours && ns === undefined && options.timeoutMs === undefined ? claim(argv) : undefined;
    return early !== undefined ? { ...early, early: true } : { ...spawnCommand(h, argv, undefined, env, timeout, ns?.fd), early: false };
  };
  return {
    async run(argv, input) {
      const timeout = commandBound(own, deadline);
      if (deadline !== undefined && timeout <= 0) return notStarted(deadline);
      if (input !== undefined) {
        const w = waiting(argv, timeout);
        h.feed(w.pid, input);
        return result(await w.finished, w.early, timeout);
      }
      return result(await spawnCommand(h, argv, null, env, timeout, ns?.fd).finished, false, timeout);
    },
    start(argv) {
      const timeout = commandBound(own, deadline);
      if (deadline !== undefined && timeout <= 0) return { write: () => {}, end: () => Promise.resolve(notStarted(deadline)) };
      const w = waiting(argv, timeout);
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
