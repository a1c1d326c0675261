import type { CheckOptions } from '../../config/check.js';
import { OPTIONS, type OptionSpec } from '../../config/options.js';
import { VALUES, type Ctx, type ValueKind } from '../../config/values.js';

/*
 * The entrypoint's check of the values given (in place of config/check.ts, which uses zod; see
 * there why): each value read by its kind's check (values.ts), as zod's transform calls it, in the
 * table's order, stopping at the first issue, which is the one zod reports first.
 */

/** One value read by its kind's check; the issue's message when it refused it. */
function read(kind: ValueKind<unknown>, value: unknown): { value: unknown } | { message: string | undefined } {
  const ctx: Ctx = { value, issues: [] };
  const out = kind.check(value, ctx);
  return ctx.issues.length === 0 ? { value: out } : { message: ctx.issues[0]?.message };
}

export const checkOptions: CheckOptions = (given, values) => {
  const data: Record<string, unknown> = {};
  for (const key of given) {
    const spec: OptionSpec = OPTIONS[key];
    const kind = VALUES[spec.value] as ValueKind<unknown>;
    const value = values[key];
    if (spec.kind !== 'strings') {
      const r = read(kind, value);
      if (!('value' in r)) return { ok: false, issue: { key, message: r.message } };
      data[key] = r.value;
      continue;
    }
    const items = value as readonly unknown[];
    const out: unknown[] = [];
    for (const [index, item] of items.entries()) {
      const r = read(kind, item);
      if (!('value' in r)) return { ok: false, issue: { key, index, message: r.message } };
      out.push(r.value);
    }
    data[key] = out;
  }
  return { ok: true, data };
};
