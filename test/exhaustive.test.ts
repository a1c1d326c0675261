import { relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/cli.js';

/**
 * Every switch over the kinds of Match and Target is exhaustive: the renderers that read rules
 * (restore text, saved form, nft statements and sets, trace) are compiled in memory, with the
 * project's compiler options, with a new match kind and a new target kind added to the model.
 * Each must fail on each kind it reads (the `never` of an `unhandled` default, or a record over
 * the kinds missing a key), so no renderer can silently drop a kind it does not know. (That they
 * compile as they are is `npm run typecheck`.)
 */
const MODEL = `${ROOT}src/model/rule.ts`;

const RENDERERS: Record<string, readonly ('newMatch' | 'newTarget')[]> = {
  'src/render/restore.ts': ['newMatch', 'newTarget'],
  'src/apply/saveform.ts': ['newMatch', 'newTarget'],
  'src/render/nft/statements.ts': ['newMatch', 'newTarget'],
  'src/render/nft/sets.ts': ['newTarget'],
  'src/trace/trace.ts': ['newMatch', 'newTarget'],
};

/** The renderers compiled with the model's text patched: the error messages per file. */
function compile(patchModel: (text: string) => string): Map<string, string[]> {
  const config = ts.getParsedCommandLineOfConfigFile(`${ROOT}tsconfig.build.json`, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(String(d.messageText)); } });
  if (config === undefined) throw new Error('no tsconfig.build.json');
  const options = { ...config.options, noEmit: true, declaration: false };
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (file) => (file === MODEL ? patchModel(read(file) ?? '') : read(file));
  const program = ts.createProgram(Object.keys(RENDERERS).map((f) => `${ROOT}${f}`), options, host);
  const errors = new Map<string, string[]>();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const file = d.file === undefined ? '(global)' : relative(ROOT, d.file.fileName);
    errors.set(file, [...(errors.get(file) ?? []), ts.flattenDiagnosticMessageText(d.messageText, '\n')]);
  }
  return errors;
}

describe('a new Match or Target kind fails to compile until each renderer handles it', () => {
  it('with a new match kind and a new target kind: each renderer fails on each kind it reads, and only on them', () => {
    const errors = compile((text) => {
      const patched = text
        .replace('export type Match =\n', "export type Match =\n  | { readonly kind: 'newMatch' }\n")
        .replace('export type Target =\n', "export type Target =\n  | { readonly kind: 'newTarget' }\n");
      expect(patched.match(/'new(Match|Target)'/g)).toEqual(["'newMatch'", "'newTarget'"]);
      return patched;
    });
    for (const [file, kinds] of Object.entries(RENDERERS)) {
      const messages = (errors.get(file) ?? []).join('\n');
      for (const kind of kinds) expect(messages, `${file} on ${kind}`).toContain(kind);
    }
    // Nothing else fails: every error is about a new kind.
    for (const [file, messages] of errors) for (const m of messages) expect(m, file).toMatch(/newMatch|newTarget/);
  }, 60_000);
});
