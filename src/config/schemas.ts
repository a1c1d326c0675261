import { $ZodArray, $ZodObject, $ZodTransform, type $ZodType } from 'zod/v4/core';
import { OPTIONS, type OptionKey, type OptionSpec } from './options.js';
import { VALUES, type ValueKind, type ValueName, type ValueOf } from './values.js';

/*
 * The option table's values as zod schemas: each kind of value (values.ts) one transform over its
 * check, and the options given one object over them. config/check.ts validates with them.
 */

const built = new Map<ValueName, $ZodType>();

/** The zod schema of a kind of value (values.ts), built on first use. */
export function schemaOf<N extends ValueName>(name: N): $ZodType<ValueOf<N>, unknown> {
  let schema = built.get(name);
  if (schema === undefined) {
    const kind = VALUES[name] as ValueKind<unknown>;
    schema = new $ZodTransform({ type: 'transform', transform: kind.check as (raw: unknown, ctx: object) => unknown });
    built.set(name, schema);
  }
  return schema as $ZodType<ValueOf<N>, unknown>;
}

/**
 * The zod schema of the options given: an object over their entries of the option table, each
 * its kind's schema (a list of them for a repeatable flag). Only the options given are in it, so
 * a run builds the schemas of the kinds it uses and no more.
 */
export function optionsSchema(keys: readonly OptionKey[]): $ZodType {
  const shape: Record<string, $ZodType> = {};
  for (const key of keys) {
    const spec: OptionSpec = OPTIONS[key];
    const value = schemaOf(spec.value);
    shape[key] = spec.kind === 'strings' ? new $ZodArray({ type: 'array', element: value }) : value;
  }
  return new $ZodObject({ type: 'object', shape });
}
