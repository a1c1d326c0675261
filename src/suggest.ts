/**
 * "Did you mean": the nearest of some known words to a word that is none of them. Called only
 * once a run has failed (an unknown flag, a value outside its choices), never on a good run.
 */

/** Edit distance with adjacent transpositions (optimal string alignment), stopping early past `max`. */
function distance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (before[j - 2] ?? 0) + 1);
      row.push(d);
      best = Math.min(best, d);
    }
    if (best > max) return max + 1;
    before = previous;
    previous = row;
  }
  return previous[b.length] ?? max + 1;
}

/** The same word for a reader: case, `-` and `_` aside (`--log-as-json` is `--log_as_json`, `--dryrun` `--dry-run`). */
const fold = (w: string): string => w.toLowerCase().replace(/[-_]/g, '');

/**
 * The known word a reader most likely meant, or undefined when none is close: one that differs
 * only in case, `-` or `_`; else the nearest by edit distance (at most 1 for words up to 4
 * letters, 2 up to 8, else 3); else the only one the word begins, or begins with (`warning` for
 * `warn`; 3 letters at least).
 */
export function closest(word: string, known: readonly string[]): string | undefined {
  const folded = fold(word);
  const same = known.find((k) => fold(k) === folded);
  if (same !== undefined) return same;
  const max = folded.length <= 4 ? 1 : folded.length <= 8 ? 2 : 3;
  let best: string | undefined;
  let bestDistance = max + 1;
  for (const k of known) {
    const d = distance(folded, fold(k), max);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  if (best !== undefined) return best;
  const related = known.filter((k) => {
    const f = fold(k);
    return Math.min(f.length, folded.length) >= 3 && (f.startsWith(folded) || folded.startsWith(f));
  });
  return related.length === 1 ? related[0] : undefined;
}

/** " (did you mean X?)" when a known word is close, else "". */
export function didYouMean(word: string, known: readonly string[]): string {
  const near = closest(word, known);
  return near === undefined ? '' : ` (did you mean ${near}?)`;
}
