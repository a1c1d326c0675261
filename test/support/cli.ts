import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli.js';
import { TRACE_COMMAND, withoutProgram } from '../../src/args.js';
import { fixedHost, type HostFacts } from '../../src/config/host.js';
import type { DryRunJson } from '../../src/render/dryrun.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the CLI in-process with a fixed host (no detection), capturing its output. */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, host: HostFacts = fixedHost(), stdin?: string): Promise<CliResult> {
  // Safety net: a test must never program the machine it runs on. Real runs need a namespace.
  const dry = args.some((a) => a === '-n' || a === '--dry-run' || a === '--dry-run=true' || a === '--help') || withoutProgram(args)[0] === TRACE_COMMAND;
  const targeted = args.some((a) => a === '--network-namespace' || a.startsWith('--network-namespace='));
  if (!dry && !targeted) throw new Error(`test would apply rules to the host: add --dry-run or --network-namespace (${args.join(' ')})`);
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    env,
    host,
    io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) },
    ...(stdin === undefined ? {} : { stdin: () => Promise.resolve(stdin) }),
  });
  return { code, stdout, stderr };
}

/** Run a dry run with --output json and parse it; throws with stderr when it fails. */
export async function dryRunJson(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<DryRunJson> {
  const r = await runCli([...args, '--dry-run', '--output', 'json'], env);
  if (r.code !== 0) throw new Error(`dry run failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as DryRunJson;
}

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ConformanceCase {
  readonly suite: string;
  readonly name: string;
  readonly args: readonly string[];
  readonly expected: { readonly ipv4: string | null; readonly ipv6: string | null };
}

/** The Istio-derived conformance cases under golden/istio (and golden/istio-extra when present). */
export function conformanceCases(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const suite of ['istio', 'istio-extra']) {
    const dir = `${ROOT}golden/${suite}`;
    if (!existsSync(`${dir}/cases.json`)) continue;
    const data = JSON.parse(readFileSync(`${dir}/cases.json`, 'utf8')) as { base: string[]; cases: Record<string, string[]> };
    for (const [name, extra] of Object.entries(data.cases)) {
      const read = (fam: string): string | null => {
        const f = `${dir}/expected/${name}.${fam}.restore`;
        return existsSync(f) ? readFileSync(f, 'utf8') : null;
      };
      out.push({ suite, name, args: [...data.base, ...extra], expected: { ipv4: read('v4'), ipv6: read('v6') } });
    }
  }
  return out;
}
