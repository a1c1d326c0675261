/**
 * The shared modules' exports as plain objects, for the prelude to publish (shared.ts). Not
 * `import * as`: a bundler's namespace object defines a getter and a setter per export, which the
 * entrypoint's interpreter paid for at every start-up (~50 us) before it could start the restore.
 * `satisfies` keeps each object complete: an export added to a module and missing here fails
 * type checking.
 */
import type * as Errors from '../../errors.js';
import type * as Options from '../../config/options.js';
import type * as Args from '../../args.js';
import { ApplyError, ConfigError, describeSource, quoteValue } from '../../errors.js';
import { OPTIONS, OPTION_KEYS } from '../../config/options.js';
import {
  DIFF_COMMAND,
  PROBE_CLIENT_COMMAND,
  PROGRAM,
  TRACE_COMMAND,
  collectRaw,
  flagKey,
  flagSource,
  jsonLogsAsked,
  normalizeArgs,
  quickRaw,
  rawFromArgs,
  rawFromArgsViaYargs,
  withoutProgram,
} from '../../args.js';

export const errors = { ApplyError, ConfigError, describeSource, quoteValue } satisfies typeof Errors;
export const options = { OPTIONS, OPTION_KEYS } satisfies typeof Options;
export const args = {
  DIFF_COMMAND,
  PROBE_CLIENT_COMMAND,
  PROGRAM,
  TRACE_COMMAND,
  collectRaw,
  flagKey,
  flagSource,
  jsonLogsAsked,
  normalizeArgs,
  quickRaw,
  rawFromArgs,
  rawFromArgsViaYargs,
  withoutProgram,
} satisfies typeof Args;
