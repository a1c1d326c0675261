import { describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { rawFromArgs } from '../src/args.js';
import { fixedHost } from '../src/config/host.js';
import { traceArgsReader } from '../src/trace/index.js';

/**
 * argv is read exactly once per run: the error line's format (--log_as_json) and trace's own
 * flags come out of the same walk that reads the configuration flags. Counted by wrapping the
 * arguments in a Proxy that counts how often each position is read (before, a bad flag or a value
 * zod rejected made cli.ts walk the arguments again for --log_as_json).
 */
function counted(args: readonly string[]): { readonly argv: readonly string[]; readonly reads: number[] } {
  const reads = args.map(() => 0);
  const argv = new Proxy([...args], {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && /^[0-9]+$/.test(prop)) reads[Number(prop)] = (reads[Number(prop)] ?? 0) + 1;
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  return { argv, reads };
}

async function run(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { env: {}, host: fixedHost(), io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) } });
  return { code, stdout, stderr };
}

describe('the command line is read once per run', () => {
  it('a bad flag after --log_as_json: a JSON error line, each argument read once', async () => {
    const { argv, reads } = counted(['--log_as_json', '--redirect-dns=yes', '-n']);
    const r = await run(argv);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const line = JSON.parse(r.stderr) as { level: string; msg: string };
    expect(line.level).toBe('error');
    expect(line.msg).toContain('--redirect-dns');
    // Walked once, past the bad flag (the last --log_as_json decides, even one after it). The first
    // word is also peeked at by the dispatch (a program name, a subcommand), which walks nothing.
    expect(reads.slice(1)).toEqual([1, 1]);
  });

  it('a --log_as_json after the bad flag still makes the error JSON', async () => {
    const r = await run(['--redirect-dns=yes', '--log_as_json', '-n']);
    expect(r.code).toBe(1);
    expect((JSON.parse(r.stderr) as { level: string }).level).toBe('error');
    const plain = await run(['--redirect-dns=yes', '--log_as_json', '--log_as_json=false', '-n']);
    expect(plain.stderr).toMatch(/^istio-iptables: .*--redirect-dns/);
  });

  it('a value zod rejects: the JSON error line comes from the one reading', async () => {
    const { argv, reads } = counted(['--log_as_json', '-p', 'not-a-port', '-n']);
    const r = await run(argv);
    expect(r.code).toBe(1);
    const line = JSON.parse(r.stderr) as { level: string; msg: string };
    expect(line.msg).toContain('not-a-port');
    expect(reads.slice(1)).toEqual([1, 1, 1]);
  });

  it("trace's own flags and flow words come out of the same walk as the configuration flags", async () => {
    const reader = traceArgsReader();
    const { argv, reads } = counted(['-c', '--flows', 'inbound', '--in', 'eth1', 'tcp', '10.0.0.1', '->', '10.0.0.2:80', '--local=10.0.0.2', '-b', '*']);
    const raw = await rawFromArgs(argv, {}, () => {}, { logAsJson: false }, reader.own);
    expect(raw).not.toBe('help');
    if (raw === 'help') return;
    // -c takes the next argument whatever it looks like, as the main parser does.
    expect(raw.values.excludeInterfaces).toBe('--flows');
    expect(raw.values.inboundPorts).toBe('*');
    const t = reader.args();
    expect(t.words).toEqual(['inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:80']);
    expect(t.inInterface).toBe('eth1');
    expect(t.localAddresses).toEqual(['10.0.0.2']);
    expect(t.flowsFile).toBeUndefined();
    expect(reads.every((n) => n === 1)).toBe(true);
  });
});
