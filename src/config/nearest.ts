/**
 * Did-you-mean: the known name nearest to a mistyped one. Names are compared without case and
 * without "-" and "_" (so `proxy_port`, `ProxyPort` and `proxy-port` are all `proxyport`), by the
 * number of single-character insertions, deletions, substitutions and swaps of two neighbours
 * (optimal string alignment distance).
 */

/** A name without case and without "-" or "_". */
function fold(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}

/** The optimal string alignment distance between two strings. */
export function editDistance(a: string, b: string): number {
  // Three rows of the dynamic-programming table: two back (for swaps), one back, this one.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (before[j - 2] ?? 0) + 1);
      row.push(d);
    }
    before = previous;
    previous = row;
  }
  return previous[b.length] ?? 0;
}

/**
 * The candidate nearest to `name`, or undefined when none is near enough to be a likely typo:
 * at most 2 edits, or a third of the name's length for longer names. Each candidate is a name and
 * what it stands for (a flag's long name may stand for its option key); a candidate spelled
 * exactly as `name` wins, then of equally near candidates the first.
 */
export function nearest<T>(name: string, candidates: Iterable<readonly [name: string, value: T]>): { readonly name: string; readonly value: T } | undefined {
  const folded = fold(name);
  let best: { name: string; value: T } | undefined;
  let bestDistance = Math.max(2, Math.floor(folded.length / 3)) + 1;
  for (const [candidate, value] of candidates) {
    // The very name, as written, over a name that is only equal without case and separators.
    if (candidate === name) return { name: candidate, value };
    const d = editDistance(folded, fold(candidate));
    if (d < bestDistance) {
      best = { name: candidate, value };
      bestDistance = d;
    }
  }
  return best;
}
