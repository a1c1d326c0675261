import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/cli.js';

/**
 * Drop-in for Istio's injector: every arg vector its sidecar injection template renders for
 * istio-init / istio-validation (test/data/injector-vectors.json, each with where it came from),
 * with the environment proxyMetadata and Kubernetes service links give, must be accepted by both
 * shipped programs, the Node CLI (bin/istio-iptables.js) and the entrypoint
 * (dist/entrypoint/istio-iptables), and print the same. --dry-run is added (the real init args
 * apply); nothing is applied.
 */
interface Vector {
  readonly name: string;
  readonly from: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

const { vectors } = JSON.parse(readFileSync(join(ROOT, 'test/data/injector-vectors.json'), 'utf8')) as { vectors: Vector[] };
const BIN = join(ROOT, 'bin/istio-iptables.js');
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');

/** Only PATH from this process: both programs see exactly the vector's environment. */
const envOf = (v: Vector): Record<string, string> => ({ PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...v.env });

async function run(program: string[], v: Vector) {
  const r = await execa(program[0] as string, [...program.slice(1), ...v.args, '--dry-run'], {
    reject: false,
    env: envOf(v),
    extendEnv: false,
    stripFinalNewline: false,
    timeout: 30_000,
  });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** Istio's JSON log line: level, time (UTC to the microsecond), msg, in its encoder's order; then a record's own fields (docs/logs.md). */
const JSON_LINE = /^\{"level":"(?:debug|info|warn|error)","time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z","msg":"(?:[^"\\]|\\.)*"(?:,"\w+":.*)?\}$/;

/** stderr with each JSON line's time replaced, after checking every line is one of Istio's JSON log lines. */
function jsonLogLines(stderr: string): string {
  const lines = stderr.split('\n');
  expect(lines.pop()).toBe('');
  for (const line of lines) {
    expect(line).toMatch(JSON_LINE);
    expect(Object.keys(JSON.parse(line) as object).slice(0, 3)).toEqual(['level', 'time', 'msg']);
  }
  return lines.map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"')).join('\n');
}

describe("Istio's injector vectors", () => {
  it('the table is large and varied (every golden, every annotation, env, JSON logs)', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(100);
    const all = vectors.map((v) => v.args.join(' '));
    for (const needle of ['--log_as_json', '-m TPROXY', '--run-validation --skip-rule-apply', '--native-nftables', '--force-apply', '-q 8000:8080', '15090,15021,0,8080,15020', '-k ', '-c ', '-o ']) {
      expect(all.some((a) => a.includes(needle)), needle).toBe(true);
    }
    expect(new Set(vectors.map((v) => v.name)).size).toBe(vectors.length);
    for (const v of vectors) {
      expect(v.from.length).toBeGreaterThan(10);
      expect(v.args[0]).toBe('istio-iptables');
    }
  });

  it.each(vectors.map((v) => [v.name, v] as const))('%s: accepted, same output from the Node CLI and the entrypoint', async (_n, v) => {
    const [node, entry] = await Promise.all([run(['node', BIN], v), run([ENTRYPOINT], v)]);
    expect(node.code, node.stderr).toBe(0);
    expect(entry.code, entry.stderr).toBe(0);
    expect(entry.stdout).toBe(node.stdout);
    expect(node.stdout).toMatch(/^# IPv4: iptables-restore --noflush\n\*/);
    if (v.args.includes('--log_as_json')) {
      // Every log line is JSON; the two runs differ only in the time each line was written.
      expect(jsonLogLines(entry.stderr)).toBe(jsonLogLines(node.stderr));
    } else {
      expect(entry.stderr).toBe(node.stderr);
      expect(node.stderr).not.toMatch(/^\{/m);
    }
    // A value Istio cannot parse, in a variable that is read (no flag for it), is named in a
    // warning; a variable a flag overrides (-z beats INBOUND_CAPTURE_PORT) is not read at all.
    for (const [name, value] of Object.entries(v.env ?? {})) {
      const unparsable =
        (name === 'ISTIO_META_DNS_CAPTURE' && !['true', 'True', 'false', ''].includes(value)) ||
        (['IPTABLES_PROBE_PORT', 'INBOUND_TUNNEL_PORT'].includes(name) && value.includes('://'));
      const warning = `ignoring environment variable ${name}=${JSON.stringify(value).replaceAll('"', v.args.includes('--log_as_json') ? '\\"' : '"')}`;
      if (unparsable) expect(node.stderr).toContain(warning);
      else expect(node.stderr).not.toContain(`environment variable ${name}=`);
    }
  });
});
