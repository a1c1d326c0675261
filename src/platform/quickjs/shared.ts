import type { RawInput } from '../../config/parse.js';

/**
 * What the prelude hands the program (they are separate scripts in one global scope): the command
 * line as it read it. (Its modules, errors, the option table and the flag reader, are published
 * by the bundle itself: scripts/bundle-quickjs.mjs.)
 */
export interface Shared {
  /** This process's arguments and environment read into raw values; undefined when not read (yargs needed, or a bad flag). */
  rawInput: RawInput | undefined;
}

const SHARED_GLOBAL = '__istioIptablesShared';

export function publishShared(shared: Shared): void {
  (globalThis as Record<string, unknown>)[SHARED_GLOBAL] = shared;
}

export function shared(): Shared | undefined {
  return (globalThis as Record<string, unknown>)[SHARED_GLOBAL] as Shared | undefined;
}
