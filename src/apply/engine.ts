/*
 * The one transaction engine of applying: iptables-restore, nft and routing are steps, each of
 * which, once done, records how to undo itself; a failure anywhere undoes every step done, newest
 * first, in one loop. Every way of applying (the fresh path, apply/fresh.ts; the careful path,
 * apply/careful.ts; native nftables, apply/nft.ts) runs its steps in a Transaction. Under a run's
 * deadline (--run-timeout), the rollback runs in the deadline's undo window (commands.ts).
 */
import type { Logger } from '../log.js';
import { undoing, type RunDeadline } from './commands.js';

/** How to undo one step that was done. */
export interface Undo {
  /** What it undoes, for the log. */
  readonly what: string;
  /** Undo it; resolves to what could not be put back (undefined: undone). Never rejects. */
  run(): Promise<string | undefined>;
}

export class Transaction {
  readonly #undos: Undo[] = [];

  constructor(readonly deadline?: RunDeadline) {}

  /**
   * Run `body` as one transaction: if it throws, every step it recorded is undone, the log says
   * whether the namespace is as it was (or what could not be put back), and the error is thrown on.
   */
  static async run<T>(log: Logger, body: (tx: Transaction) => Promise<T>, deadline?: RunDeadline): Promise<T> {
    const tx = new Transaction(deadline);
    try {
      return await body(tx);
    } catch (err) {
      if (tx.changed) {
        const problems = await tx.rollback();
        if (problems.length > 0) log.error(`rollback incomplete: ${problems.join('; ')}`);
        else log.info('rolled back: the namespace is as it was before this run');
      }
      throw err;
    }
  }

  /** Record a step done (or that may have done something: its undo finds out what). */
  did(undo: Undo): void {
    this.#undos.push(undo);
  }

  /** Whether any step was recorded. */
  get changed(): boolean {
    return this.#undos.length > 0;
  }

  /**
   * Undo every step recorded, newest first. Each undo that fails is tried once more: a command
   * killed once (out of memory, a signal) must not leave its step behind. Resolves to what could
   * not be put back, one line per step; the record is empty afterwards.
   */
  rollback(): Promise<string[]> {
    return undoing(this.deadline, async () => {
      const problems: string[] = [];
      while (this.#undos.length > 0) {
        const undo = this.#undos.pop() as Undo;
        const problem = (await settle(undo)) === undefined ? undefined : await settle(undo);
        if (problem !== undefined) problems.push(`${undo.what}: ${problem}`);
      }
      return problems;
    });
  }
}

async function settle(undo: Undo): Promise<string | undefined> {
  try {
    return await undo.run();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
