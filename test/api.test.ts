import { join } from 'node:path';
import { execa } from 'execa';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/cli.js';

/**
 * The public API is api/istio-iptables-ts.d.ts: regenerated from the sources and compared, so
 * that every change to the surface is deliberate (`npm run api:update`, then review the diff).
 */

const SCRIPT = join(ROOT, 'scripts', 'api-report.mjs');
const REPORT = join(ROOT, 'api', 'istio-iptables-ts.d.ts');

function report(...args: string[]) {
  return execa('node', [SCRIPT, ...args], { cwd: ROOT, reject: false, timeout: 120_000 });
}

describe('API report', { timeout: 120_000 }, () => {
  it('matches the committed api/istio-iptables-ts.d.ts', async () => {
    const r = await report('--check');
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('is itself a complete declaration file that needs nothing beyond TypeScript lib', () => {
    const program = ts.createProgram([REPORT], { strict: true, noEmit: true, types: [], lib: ['lib.es2022.d.ts'], module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diagnostics).toEqual([]);
    expect(program.getSourceFiles().filter((f) => !program.isSourceFileDefaultLibrary(f)).map((f) => f.fileName)).toEqual([REPORT]);
  });

  it('refuses a surface leaking yargs or Node types, an export without TSDoc, or one referring to an unexported type', async () => {
    const leaks = [
      "export type { Argv } from 'yargs';", // yargs's types
      "export { main } from './cli.js';", // NodeJS.ProcessEnv
      'export const undocumented = 1;',
      "/** Documented. */\nexport { diffPlan } from './apply/diff.js';", // Runner, OwnerResolver are internal
    ].join('\n');
    const r = await report('--extra-export', leaks);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/the declarations read a file that is not ours: .*node_modules\/@types\/yargs/);
    expect(r.stderr).toMatch(/Cannot find namespace 'NodeJS'/);
    expect(r.stderr).toMatch(/^undocumented has no TSDoc comment/m);
    expect(r.stderr).toMatch(/^diffPlan refers to Runner, which is not exported/m);
    expect(r.stderr).toMatch(/^diffPlan refers to OwnerResolver, which is not exported/m);
  });

  // The option table's entries are README's flag table, not the report's (scripts/api-report.mjs).
  const NEW_OPTION = `  apiReportExamplePorts: {
    long: 'api-report-example-ports', kind: 'string', default: '', env: ['API_REPORT_EXAMPLE_PORTS'], value: 'portRangeList', parsed: [], config: 'capture',
    group: 'Capture', help: 'Ports excluded from outbound capture',
  },
  vklog: {`;

  it('is unchanged by a new option, whose entry README\'s flag table shows instead', async () => {
    const r = await report('--check', '--edit', 'src/config/options.ts', '  vklog: {', NEW_OPTION);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('changes when the way options become configuration types changes', async () => {
    const r = await report('--check', '--edit', 'src/config/options.ts', "? readonly ValueOf<(typeof OPTIONS)[K]['value']>[]", "? ValueOf<(typeof OPTIONS)[K]['value']>[]");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/the public API differs/);
    expect(r.stdout).toContain("? ValueOf<(typeof OPTIONS)[K]['value']>[]");
  });

  it('refuses an option whose kind, value or config is not one literal type (README would not show the change)', async () => {
    const r = await report(
      '--edit', 'src/config/options.ts', "long: 'vklog', kind: 'string'", "long: 'vklog', kind: 'string' as OptionKind",
      '--edit', 'src/config/options.ts', "value: 'klogLevel'", "value: 'klogLevel' as ValueName",
      '--edit', 'src/config/options.ts', "value: 'logCallers', parsed: [],", "value: 'logCallers', parsed: [], config: 'run' as 'capture' | 'run',",
    );
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^(api-report: )?OPTIONS\.vklog\.kind is OptionKind, not one literal/m);
    expect(r.stderr).toMatch(/^(api-report: )?OPTIONS\.vklog\.value is .*, not one literal/m);
    expect(r.stderr).toMatch(/^(api-report: )?OPTIONS\.logCaller\.config is "capture" \| "run", not one literal/m);
  });
});
