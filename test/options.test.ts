import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPTIONS, OPTION_KEYS, type OptionSpec } from '../src/config/options.js';
import { schemaOf } from '../src/config/schemas.js';
import { safeParse } from 'zod/v4/core';

describe('the option table', () => {
  it.each(OPTION_KEYS)('%s: the typed default is what its schema reads from the default', (key) => {
    const spec: OptionSpec = OPTIONS[key];
    expect('parsed' in spec, 'an option with a default has its typed reading, and only such an option').toBe(spec.default !== undefined);
    if (spec.default === undefined) return;
    const r = safeParse(schemaOf(spec.value), spec.default);
    expect(r.success).toBe(true);
    if (r.success) expect(r.data).toEqual(spec.parsed);
  });

  // README's flag table shows each option's value and marks repeatable flags; with this, those two
  // columns determine the option's kind, and so its types (RawOptions, OptionValue).
  it.each(OPTION_KEYS)('%s: a switch is exactly an option whose value is boolean', (key) => {
    const spec: OptionSpec = OPTIONS[key];
    expect(spec.kind === 'boolean').toBe(spec.value === 'boolean');
  });
});

/** README's flag table, as the option table gives it. */
function flagTable(): string {
  const cell = (s: string): string => s.replaceAll('|', '\\|');
  const rows = OPTION_KEYS.map((key) => {
    const spec: OptionSpec = OPTIONS[key];
    const flag = `${spec.short === undefined ? '' : `-${spec.short}, `}--${spec.long}${spec.kind === 'strings' ? ' (repeatable)' : ''}`;
    const env = spec.env.length === 0 ? 'none' : spec.env.map((e) => `\`${e}\``).join(', ');
    const def = spec.default === undefined ? 'derived' : spec.default === '' ? '""' : String(spec.default);
    const where = spec.config === undefined ? `\`${key}\` (checked only)` : `\`${spec.config}.${key}\``;
    return `| \`${flag}\` | ${env} | ${cell(def)} | ${where} | \`${spec.value}\` | ${cell(spec.help)} |`;
  });
  return ['| flag | env var | default | key | value | meaning |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

describe("README's flag table", () => {
  // Regenerate with README_UPDATE=1 npx vitest run test/options.test.ts
  it('is the option table', () => {
    const path = new URL('../README.md', import.meta.url);
    const readme = readFileSync(path, 'utf8');
    const re = /(<!-- flags: generated from src\/config\/options\.ts by test\/options\.test\.ts -->\n)([\s\S]*?)(\n<!-- flags: end -->)/;
    expect(readme).toMatch(re);
    if (process.env.README_UPDATE === '1') writeFileSync(path, readme.replace(re, (_, a: string, _b: string, c: string) => `${a}${flagTable()}${c}`));
    expect(re.exec(readFileSync(path, 'utf8'))?.[2]).toBe(flagTable());
  });
});
