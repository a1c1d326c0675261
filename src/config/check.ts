import { safeParse } from 'zod/v4/core';
import type { OptionKey } from './options.js';
import { optionsSchema } from './schemas.js';

/*
 * Checking the values given against the option table, with zod (config/schemas.ts): the one
 * object schema over the options given, parsed once. The entrypoint's interpreter has its own
 * (platform/quickjs/check.ts, put in this module's place by scripts/bundle-quickjs.mjs, which
 * checks that both export the same): the same checks (values.ts) called in the same order without
 * zod, which costs a run there ~0.13 ms (building the schemas and parsing) and 12 KB of bytecode
 * read before the first restore is fed its payload. test/check.test.ts holds the two to the same
 * results.
 */

/** The first value refused: its option, its position in a repeatable option's list, what was expected. */
export interface OptionIssue {
  readonly key: OptionKey;
  readonly index?: number | undefined;
  readonly message?: string | undefined;
}

/** The typed values of the options given (under their keys), or the first issue in the table's order. */
export type OptionsChecked = { readonly ok: true; readonly data: Record<string, unknown> } | { readonly ok: false; readonly issue: OptionIssue };

/** The contract both implementations are held to. */
export type CheckOptions = (given: readonly OptionKey[], values: Readonly<Record<string, unknown>>) => OptionsChecked;

/**
 * Check the values of the options `given` (keys in the table's order; a repeatable option's value
 * a list): each read by its kind's check.
 */
export const checkOptions: CheckOptions = (given, values) => {
  const result = safeParse(optionsSchema(given), values);
  if (result.success) return { ok: true, data: result.data as Record<string, unknown> };
  const issue = result.error.issues[0];
  const index = issue?.path[1];
  return { ok: false, issue: { key: (issue?.path[0] ?? given[0]) as OptionKey, index: typeof index === 'number' ? index : undefined, message: issue?.message } };
};
