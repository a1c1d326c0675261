/** Stands in for src/parser.ts (yargs) in the QuickJS entrypoint: --help and errors go to the full CLI. */
import { handOff } from './handoff.js';

export function createParser(_args: readonly string[]): never {
  return handOff('--help or an unknown argument');
}
