/**
 * "Did you mean": the known word closest to a mistyped one, by edit distance, as git and
 * cargo suggest. Pure; used for commands, subcommands and options.
 *
 * @module
 */

/** The Levenshtein distance of `a` and `b` (insertions, deletions, substitutions; each 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The candidate `word` most likely meant: one it is a prefix of (when only one is), else the
 * nearest within a third of its length (at least 1, at most 3 edits); undefined when none is
 * near enough to be a good guess.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  if (word === "") return undefined;
  const prefixed = candidates.filter((c) => c.startsWith(word));
  if (prefixed.length === 1 && word.length >= 2) return prefixed[0];
  // A word whose letters all appear in order in one candidate (`imgs`, `images`) is that one.
  const spread = candidates.filter((c) => isSubsequence(word, c));
  if (spread.length === 1 && word.length >= 3) return spread[0];
  const limit = Math.min(3, Math.max(1, Math.ceil(word.length / 3)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** `; did you mean 'X'?` for a message, or "" when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[], prefix = ""): string {
  const c = closest(word, candidates);
  return c === undefined ? "" : `; did you mean '${prefix}${c}'?`;
}

function isSubsequence(word: string, of: string): boolean {
  let j = 0;
  for (const ch of of) if (ch === word[j]) j++;
  return j === word.length;
}
