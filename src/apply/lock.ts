import { ApplyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LockAttempt, LockPrimitive } from '../platform/platform.js';
import { LOCK_NAME, type RunDeadline } from './commands.js';

/*
 * Waiting for a namespace's run lock (apply/commands.ts LOCK_NAME), the same on every platform:
 * the platform makes one attempt at a time (binding the name in the namespace, and, when it is in
 * use, asking the holder who it is); this decides whether to wait.
 *
 * Any process in the namespace can bind the name, capabilities or not. A holder is a run of ours
 * only if it listens and accepts (ours do, so a connection gets in and the kernel names the holder)
 * and holds CAP_NET_ADMIN (without it, it could change nothing in the namespace). A name held by
 * anything else makes no run wait or fail: the run goes on, holding whatever form of the name it
 * could bind, and says so.
 */

type Holder = Extract<LockAttempt, { held: false }>['holders'][number];

/** Whether a holder may be a run of ours: listening, and CAP_NET_ADMIN effective (or not readable: not visible from here). */
export function mayBeRun(h: Holder): boolean {
  return h.listening && h.netAdmin !== false;
}

function describe(h: Holder): string {
  const who = h.pid > 0 ? `pid ${h.pid}${h.uid === null ? '' : ` (uid ${h.uid})`}` : h.listening ? 'a process not visible from here' : 'a process';
  const what = !h.listening ? 'bound without listening' : h.netAdmin === false ? 'without CAP_NET_ADMIN' : h.netAdmin === null ? 'capabilities unknown' : 'with CAP_NET_ADMIN';
  return `${who}, ${what}`;
}

export interface LockClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/**
 * Run `fn` holding the namespace's run lock, waiting up to `waitSeconds` (or what is left of the
 * run's deadline, when that is less) for a run of ours that holds it. Two runs on one namespace
 * take turns: the second reads the state the first left, so it never applies over it nor rolls
 * back over it.
 */
export async function withRunLock<T>(lock: LockPrimitive, waitSeconds: number, log: Logger, clock: LockClock, fn: () => Promise<T>, deadline?: RunDeadline): Promise<T> {
  const start = clock.now();
  const waitMs = Math.max(0, Math.min(waitSeconds * 1000, deadline === undefined ? Infinity : deadline.left()));
  let waitingFor: Holder | undefined;
  for (;;) {
    let a: LockAttempt;
    try {
      a = await lock.attempt();
    } catch (err) {
      lock.release();
      throw new ApplyError(`cannot take the run lock of the network namespace: ${err instanceof Error ? err.message : String(err)}`, [], '');
    }
    if (a.held) {
      if (waitingFor !== undefined) log.info(`took the run lock after ${Math.round(clock.now() - start)} ms (held by ${describe(waitingFor)})`, { lock: LOCK_NAME, waitedMs: Math.round(clock.now() - start) });
      break;
    }
    const runs = a.holders.filter(mayBeRun);
    if (runs.length === 0) {
      lock.keep();
      log.warn(`the run lock's name is held by ${[...new Set(a.holders.map(describe))].join('; ')}: no run of ours; going on without waiting`);
      break;
    }
    const holder = runs[0] as Holder;
    // Said once, when the wait starts (a holder seen again, or its other form, is the same wait).
    if (waitingFor === undefined) log.info(`waiting for the network namespace's run lock (${LOCK_NAME}), held by ${describe(holder)} (up to ${Math.round(waitMs / 100) / 10} s)`, { lock: LOCK_NAME, waitSeconds: Math.round(waitMs / 100) / 10, ...(holder.pid > 0 ? { pid: holder.pid } : {}) });
    waitingFor = holder;
    const waited = clock.now() - start;
    if (waited >= waitMs) {
      lock.release();
      // The wait is waitSeconds, or less when the run's deadline came first.
      throw new ApplyError(`another istio-iptables run (${describe(holder)}) held the network namespace's run lock for the ${Math.round(waited / 100) / 10} s this run waited; nothing was changed`, [], '');
    }
    await clock.sleep(10);
  }
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
