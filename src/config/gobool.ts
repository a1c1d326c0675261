/** Go's strconv.ParseBool spellings, as Istio reads booleans from flags and environment variables. */
export const GO_TRUE: ReadonlySet<string> = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
export const GO_FALSE: ReadonlySet<string> = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/** The Go spelling a word most likely means as a boolean (`yes` is true); undefined when none. */
export function goBoolMeant(word: string): string | undefined {
  if (GO_TRUE.has(word) || GO_FALSE.has(word)) return word;
  return /^(?:yes|y|on|enabled?)$/i.test(word) ? 'true' : /^(?:no|n|off|disabled?)$/i.test(word) ? 'false' : undefined;
}

/** What a boolean takes, said to someone who gave `word`: "true or false", with the spelling meant. */
export function goBoolExpected(word: string): string {
  const meant = goBoolMeant(word);
  return meant === undefined ? 'true or false' : `true or false (did you mean ${meant}?)`;
}
