import type * as Errors from '../../errors.js';
import type * as Options from '../../config/options.js';
import type * as Args from '../../args.js';
import type { RawInput } from '../../config/parse.js';

/**
 * What the prelude hands the program and the extra script (they are separate scripts in one
 * global scope): its module instances, so each is loaded once and error classes are one class,
 * and the command line as it read it.
 */
export interface Shared {
  readonly errors: typeof Errors;
  readonly options: typeof Options;
  readonly args: typeof Args;
  /** This process's arguments and environment read into raw values; undefined when not read (yargs needed, or a bad flag). */
  rawInput: RawInput | undefined;
}

/** The global the scripts meet at (scripts/bundle-quickjs.mjs names it too). */
export const SHARED_GLOBAL = '__istioIptablesShared';

export function publishShared(shared: Shared): void {
  (globalThis as Record<string, unknown>)[SHARED_GLOBAL] = shared;
}

export function shared(): Shared | undefined {
  return (globalThis as Record<string, unknown>)[SHARED_GLOBAL] as Shared | undefined;
}
