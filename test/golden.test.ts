import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import snapshotDiff from 'snapshot-diff';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from './support/cli.js';
import { MODES } from './support/modes.js';

/**
 * One golden file per mode: the full text dry run (both restore payloads and the ip commands).
 * A difference fails with a readable diff; goldens change only on purpose: `npm run golden:update`,
 * then review `git diff golden/`.
 */

function compareGolden(name: string, actual: string): void {
  const file = `${ROOT}golden/modes/${name}.txt`;
  if (process.env['UPDATE_GOLDEN'] === '1') {
    mkdirSync(`${ROOT}golden/modes`, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) throw new Error(`missing golden ${file}: run npm run golden:update and review it`);
  const expected = readFileSync(file, 'utf8');
  if (expected !== actual) {
    const diff = snapshotDiff(expected, actual, { aAnnotation: `golden/modes/${name}.txt`, bAnnotation: 'actual', contextLines: 3, colors: false });
    throw new Error(`golden mismatch for ${name} (npm run golden:update if intended):\n${diff}`);
  }
}

describe('golden dry runs', () => {
  it.each(Object.entries(MODES))('%s', async (name, args) => {
    const r = await runCli([...args, '-n']);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error'))).toEqual([]);
    expect(r.code).toBe(0);
    compareGolden(name, r.stdout);
  });

  it('every golden file belongs to a mode', async () => {
    const { readdirSync } = await import('node:fs');
    const files = readdirSync(`${ROOT}golden/modes`).map((f) => f.replace(/\.txt$/, ''));
    expect(files.sort()).toEqual(Object.keys(MODES).sort());
  });
});
