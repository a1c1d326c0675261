import type { Rule } from './rule.js';

/** Where a rule goes: its table and chain, appended or inserted at a position. */
export type Placement = Pick<Rule, 'table' | 'chain' | 'op'>;

/** The key of a chain in a replay's result: `table/chain` (e.g. `nat/PREROUTING`). */
export function chainKey(table: string, chain: string): string {
  return `${table}/${chain}`;
}

export interface ReplayOptions<T> {
  /**
   * An insert outside its chain (position below 1, or past the chain's end, which the kernel's
   * iptables-restore rejects and Istio's nft appends): throw to refuse it; return to append it.
   * By default a position below 1 is refused and an insert past the end appended.
   */
  readonly outOfRange?: (item: T, length: number) => void;
  /** Told where each item went in as it is replayed: its 0-based index, or undefined when last. */
  readonly placed?: (item: T, index: number | undefined) => void;
}

function refuseBelowOne(item: Placement): void {
  if (item.op.kind === 'insert' && !(Number.isInteger(item.op.position) && item.op.position >= 1)) throw new RangeError(`an insert at position ${item.op.position} of ${item.table} ${item.chain}: positions start at 1`);
}

/**
 * Each chain's items in the kernel's final order: appends (`-A`) and inserts (`-I CHAIN n`, at
 * index n-1) replayed in issue order, keyed by `chainKey`. One replay for every reader of a plan's
 * final order: the trace's walk, the saved-form prediction and the nft script's insert indexes.
 */
export function replayChains<T>(items: Iterable<T>, placement: (item: T) => Placement, options: ReplayOptions<T> = {}): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const at = placement(item);
    const key = chainKey(at.table, at.chain);
    let list = out.get(key);
    if (list === undefined) {
      list = [];
      out.set(key, list);
    }
    let index = at.op.kind === 'insert' ? at.op.position - 1 : list.length;
    if (!(Number.isInteger(index) && index >= 0 && index <= list.length)) {
      if (options.outOfRange !== undefined) options.outOfRange(item, list.length);
      else refuseBelowOne(at);
      index = list.length;
    }
    options.placed?.(item, index < list.length ? index : undefined);
    if (index < list.length) list.splice(index, 0, item);
    else list.push(item);
  }
  return out;
}
