import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { OPTIONS, OPTION_KEYS } from '../src/config/options.js';
import { ROOT } from './support/cli.js';

/**
 * The command line as a person meets it (issue 19, items 1-3), through both shipped programs:
 * the Node CLI (bin/istio-iptables.js) and the init container's entrypoint
 * (dist/entrypoint/istio-iptables). Every case gives the same stdout, stderr and exit code from
 * both (--version differs in its engine line only, by design).
 *
 * Nothing here may program this machine: every run that is not help, completion or trace gets
 * `--network-namespace` naming a namespace that does not exist, so that a run that wrongly went
 * on to apply fails on it instead of touching the host.
 */
const PROGRAMS = {
  node: [process.execPath, join(ROOT, 'bin/istio-iptables.js')],
  entrypoint: [join(ROOT, 'dist/entrypoint/istio-iptables')],
} as const;
const NO_NAMESPACE = '/nonexistent/h5-no-such-namespace';
const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Whether a run can only print (help, the version, completion, trace): no namespace flag needed. */
const printsOnly = (args: readonly string[]): boolean =>
  ['trace', 'completion', '--get-yargs-completions', '--help', '-h', '--version'].includes(args[0] ?? '') || args.includes('--help');

async function run(program: keyof typeof PROGRAMS, args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const [file, ...pre] = PROGRAMS[program];
  const guarded = printsOnly(args) ? args : [...args, '--network-namespace', NO_NAMESPACE];
  const r = await execa(file, [...pre, ...guarded], { reject: false, env: { PATH, ...env }, extendEnv: false, stripFinalNewline: false, timeout: 30_000 });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Both programs on the same arguments and environment: they must agree byte for byte. */
async function both(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  expect(existsSync(NO_NAMESPACE)).toBe(false);
  const [node, entry] = await Promise.all([run('node', args, env), run('entrypoint', args, env)]);
  expect(entry).toEqual(node);
  return node;
}

/** A dry run's rules with the same flags written the spaced way: the reference for the attached forms. */
const DRY = ['-n', '--enable-ipv6=false', '-u', '1337'];

describe('fail closed (item 1)', () => {
  it.each([
    [['--output', 'json'], 'istio-iptables: --output json needs --dry-run (-n): without it the rules are applied and nothing is printed\n'],
    [['--output=text', '-b', '*'], 'istio-iptables: --output text needs --dry-run (-n): without it the rules are applied and nothing is printed\n'],
    [['--output', 'json', '--dry-run=false'], 'istio-iptables: --output json needs --dry-run (-n): without it the rules are applied and nothing is printed\n'],
    [['--explain', '-b', '*'], 'istio-iptables: --explain needs --dry-run (-n): without it the rules are applied and nothing is printed\n'],
  ])('%j without a dry run: exit 1, the flag named, nothing applied', async (args, message) => {
    const r = await both(args);
    expect(r).toEqual({ code: 1, stdout: '', stderr: message });
  });

  it('--output with a dry run prints, and trace takes --output as its own', async () => {
    const dry = await both([...DRY, '--output', 'json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toHaveProperty('iptablesRestore');
    const trace = await both(['trace', '-b', '*', '--output', 'json', 'inbound', 'tcp', '10.1.1.1:4000', '->', '10.0.0.5:80']);
    expect(trace.code).toBe(0);
    expect(JSON.parse(trace.stdout)).toHaveProperty('verdict', 'redirect');
  });

  it.each([
    ['yes', ' (did you mean true?)'],
    ['on', ' (did you mean true?)'],
    ['maybe', ''],
    [' true', ''],
  ])('DRY_RUN=%j is an error naming the variable (Istio would ignore it and apply)', async (value, hint) => {
    const r = await both(['-b', '*'], { DRY_RUN: value });
    expect(r).toEqual({ code: 1, stdout: '', stderr: `istio-iptables: invalid value ${JSON.stringify(value)} for environment variable DRY_RUN: expected true or false${hint}\n` });
  });

  it.each(['true', '1', 'T', 'True'])('DRY_RUN=%s is a dry run', async (value) => {
    const r = await both(['-b', '*', '--enable-ipv6=false'], { DRY_RUN: value });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# IPv4: iptables-restore --noflush\n\*nat\n/);
  });

  it('DRY_RUN=false applies (here: fails on the missing namespace, past every check)', async () => {
    const r = await both(['-b', '*'], { DRY_RUN: 'false' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`invalid value "${NO_NAMESPACE}" for --network-namespace: expected an existing network namespace`);
  });
});

describe('the command line as pflag reads it (item 2)', () => {
  it.each([
    [['-p15001', '-mREDIRECT', '-i10.0.0.0/8', '-b8080'], ['-p', '15001', '-m', 'REDIRECT', '-i', '10.0.0.0/8', '-b', '8080']],
    [['-mTPROXY', '-b=*', '-d15090,15021', '-t0x539'], ['-m', 'TPROXY', '-b', '*', '-d', '15090,15021', '-t', '0x539']],
    [['-nb*'], ['-n', '-b', '*']],
    [['-n=true', '-x-9'], ['-x', '-9', '-n']],
  ])('%j reads as %j', async (attached, spaced) => {
    const [a, b] = await Promise.all([both([...DRY, ...attached]), both([...DRY, ...spaced])]);
    expect(a).toEqual(b);
  });

  it('-x -9 and -x-9: a bad value named as given, the same from both forms', async () => {
    const r = await both(['-n', '-x-9']);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'istio-iptables: invalid value "-9" for -x/--istio-service-exclude-cidr: expected a comma-separated list of CIDRs such as 10.0.0.0/8 or fd00::/8 ("-9" is not a CIDR)\n' });
  });

  it('-pnosuchuser is -p nosuchuser: an error, not help', async () => {
    const r = await both(['-pnosuchuser', '-n']);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'istio-iptables: invalid value "nosuchuser" for -p/--envoy-port: expected a port 1-65535\n' });
  });

  it('help only when asked: -h, --help, a cluster with h; exit 0', async () => {
    const help = await both(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: istio-iptables \[flags\]/);
    for (const args of [['-h'], ['-nh'], ['-n', '--help'], ['--help', '-p', 'bad']]) expect(await both(args)).toEqual(help);
  });

  it.each([
    [['-nY'], 'istio-iptables: unknown shorthand flag "Y" in -nY (see --help)\n'],
    [['--help', '--nope'], 'istio-iptables: unknown flag --nope (see --help)\n'],
    [['-n', '-p'], 'istio-iptables: flag needs an argument: -p/--envoy-port\n'],
  ])('%j: an error, exit 1', async (args, message) => {
    // The guard's namespace flag is appended: -p takes it as its value, so give -p last without it.
    const r = args.at(-1) === '-p' ? await bothUnguarded(args) : await both(args);
    expect(r).toEqual({ code: 1, stdout: '', stderr: message });
  });
});

/** For the one case where the guard's flag would change the meaning: safe, as the run stops at its first argument problem. */
async function bothUnguarded(args: readonly string[]): Promise<Run> {
  const runOne = async (program: keyof typeof PROGRAMS): Promise<Run> => {
    const [file, ...pre] = PROGRAMS[program];
    const r = await execa(file, [...pre, ...args], { reject: false, env: { PATH }, extendEnv: false, stripFinalNewline: false, timeout: 30_000 });
    return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const [node, entry] = await Promise.all([runOne('node'), runOne('entrypoint')]);
  expect(entry).toEqual(node);
  return node;
}

describe('conventions (item 3)', () => {
  it('--version: the package version, the engine, the build (the engine line is each program\'s own)', async () => {
    const [node, entry] = await Promise.all([run('node', ['--version']), run('entrypoint', ['--version'])]);
    expect(node.code).toBe(0);
    expect(entry.code).toBe(0);
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const [n1, n2, n3, ...nRest] = node.stdout.split('\n');
    const [e1, e2, e3, ...eRest] = entry.stdout.split('\n');
    expect(n1).toBe(`istio-iptables-ts ${version}`);
    expect(e1).toBe(n1);
    expect(n2).toBe(`engine: Node.js ${process.version}`);
    expect(e2).toMatch(/^engine: QuickJS \d{4}-\d\d-\d\d \(compiled into the entrypoint\)$/);
    // Recorded when built, from the same checkout: the same commit in both.
    expect(n3).toMatch(/^build: git [0-9a-f]{12}(-dirty)? \(\d{4}-\d\d-\d\d\)$/);
    expect(e3).toBe(n3);
    expect(nRest).toEqual(['']);
    expect(eRest).toEqual(['']);
    expect(entry.stderr + node.stderr).toBe('');
  });

  it.each([
    [['--dryrun'], 'unknown flag --dryrun (did you mean --dry-run?)'],
    [['--log-as-json', '-n'], 'unknown flag --log-as-json (did you mean --log_as_json?)'],
    [['-dry-run'], 'unknown flag -dry-run: a long flag takes two dashes (did you mean --dry-run?)'],
    [['trac', '-b', '*'], 'unknown command "trac" (did you mean trace?)'],
    [['-n', '-m', 'tproxy'], 'invalid value "tproxy" for -m/--istio-inbound-interception-mode: expected REDIRECT or TPROXY, upper case as Istio reads it (did you mean TPROXY?)'],
    [['-n', '--output', 'JSON'], 'invalid value "JSON" for --output: expected text, json, svg or mermaid (did you mean json?)'],
    [['-n', '--force-iptables-binary', 'legcy'], 'invalid value "legcy" for --force-iptables-binary: expected legacy or nft (or iptables-legacy, iptables-nft) (did you mean legacy?)'],
    [['--redirect-dns', 'true', '-n'], 'unexpected argument "true" after --redirect-dns: a switch takes its value after "=" (did you mean --redirect-dns=true?)'],
    [['-n', 'false'], 'unexpected argument "false" after -n: a switch takes its value after "=" (did you mean -n=false?)'],
    [['-n', '-i', '10.96.0.1'], 'invalid value "10.96.0.1" for -i/--istio-service-cidr: expected a comma-separated list of CIDRs such as 10.0.0.0/8 or fd00::/8 ("10.96.0.1" is an address, not a CIDR: for that address alone write 10.96.0.1/32)'],
    [['-n', '-x', 'fd00::1'], 'invalid value "fd00::1" for -x/--istio-service-exclude-cidr: expected a comma-separated list of CIDRs such as 10.0.0.0/8 or fd00::/8 ("fd00::1" is an address, not a CIDR: for that address alone write fd00::1/128)'],
  ])('%j: one line with the hint, exit 1', async (args, message) => {
    const r = await both(args);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `istio-iptables: ${message}\n` });
  });

  it('--help lists the choices of -m, --output, --force-iptables-binary and --log_target', async () => {
    const r = await both(['--help']);
    const one = r.stdout.replace(/\s+/g, ' ');
    expect(one).toMatch(/-m, --istio-inbound-interception-mode .*?\[choices: "REDIRECT", "TPROXY"\]/);
    expect(one).toMatch(/--output .*?\[choices: "text", "json", "svg", "mermaid"\]/);
    expect(one).toMatch(/--force-iptables-binary .*?\[choices: "legacy", "nft", "iptables-legacy", "iptables-nft"\]/);
    expect(one).toMatch(/--log_target .*?\[choices: "stdout", "stderr"\]/);
    expect(one).toMatch(/Commands: istio-iptables trace .*? istio-iptables diff .*? istio-iptables completion /);
    expect(one).toMatch(/--version Show the version/);
  });

  it('flags with no effect here are hidden from --help and still accepted (and checked)', async () => {
    const hidden = OPTION_KEYS.filter((k) => (OPTIONS[k] as { commands?: readonly string[] }).commands?.length === 0).map((k) => `--${OPTIONS[k].long}`);
    expect(hidden).toEqual(['--log_caller', '--log_stacktrace_level', '--vklog']);
    const help = await both(['--help']);
    for (const flag of hidden) expect(help.stdout).not.toContain(flag);
    const plain = await both([...DRY, '-b', '*']);
    const withThem = await both([...DRY, '-b', '*', '--log_caller', 'default', '--log_stacktrace_level', 'default:error', '--vklog', '4']);
    expect(withThem).toEqual(plain);
    expect(plain.code).toBe(0);
    const bad = await both([...DRY, '--vklog', 'loud']);
    expect(bad).toEqual({ code: 1, stdout: '', stderr: 'istio-iptables: invalid value "loud" for --vklog: expected an integer verbosity such as 0 or 9\n' });
  });

  it.each(['trace', 'diff'])("%s --help: its own usage and only the flags that apply, not the main help", async (command) => {
    const r = await both([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: istio-iptables ${command} \\[flags\\]`));
    // Not the main usage, its subcommand list, nor the flags of applying.
    expect(r.stdout).not.toContain('Programs the pod network namespace');
    expect(r.stdout).not.toContain('Commands:');
    const listed = (flag: string): boolean => new RegExp(`^ +(?:-\\w, )?${flag}\\b`, 'm').test(r.stdout);
    for (const flag of ['--dry-run', '--run-validation', '--cleanup-only', '--reconcile', '--probe-timeout', '--version', '--vklog']) expect(listed(flag), flag).toBe(false);
    for (const flag of ['--envoy-port', '--istio-inbound-ports', '--redirect-dns', '--log_output_level', '--help']) expect(listed(flag), flag).toBe(true);
    expect(listed('--network-namespace')).toBe(command === 'diff');
    expect(listed('--output')).toBe(command === 'trace');
    expect(r.stdout).toContain("The main command's other flags (a pod's init arguments as they are) are accepted");
  });

  it("a subcommand still accepts the main command's flags (a pod's init arguments as they are)", async () => {
    const r = await both(['trace', '-p', '15001', '-b', '*', '--run-validation', '--skip-rule-apply', '--reconcile=false', '--vklog', '1', 'inbound', 'tcp', '10.1.1.1:4000', '->', '10.0.0.5:80']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/verdict: redirect to port 15006/);
  });
});

describe('shell completion (yargs\'s), loaded in bash', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** bash with `istio-iptables` on PATH being this program, its completion script loaded, asked to complete `words`. */
  async function complete(program: keyof typeof PROGRAMS, words: readonly string[]): Promise<string[]> {
    const dir = mkdtempSync(join(tmpdir(), 'h5-completion-'));
    dirs.push(dir);
    const target = program === 'node' ? PROGRAMS.node[1] : PROGRAMS.entrypoint[0];
    symlinkSync(target, join(dir, 'istio-iptables'));
    const script = [
      'set -euo pipefail',
      'source <(istio-iptables completion)',
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
      'COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))',
      '_istio-iptables_yargs_completions',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    // node for the Node CLI's shebang (#!/usr/bin/env node).
    const r = await execa('bash', ['--norc', '--noprofile', '-c', script], { reject: false, env: { PATH: `${dir}:${dirname(process.execPath)}:${PATH}` }, extendEnv: false, timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    return r.stdout.split('\n').filter((l) => l !== '');
  }

  it.each(Object.keys(PROGRAMS) as (keyof typeof PROGRAMS)[])('%s: completes a flag, a choice and a subcommand', async (program) => {
    expect(await complete(program, ['istio-iptables', '--dry'])).toEqual(['--dry-run']);
    expect(await complete(program, ['istio-iptables', '--redirect-dns', '--capture-a'])).toEqual(['--capture-all-dns']);
    expect(await complete(program, ['istio-iptables', '-m', 'T'])).toEqual(['TPROXY']);
    expect(await complete(program, ['istio-iptables', 'tr'])).toEqual(['trace']);
    // Hidden flags are not offered.
    expect(await complete(program, ['istio-iptables', '--vk'])).toEqual([]);
  });

  it('the script and the answers are the same from both programs', async () => {
    await both(['completion']);
    const r = await both(['--get-yargs-completions', 'istio-iptables', '--output', '']);
    expect(r.stdout).toBe('text\njson\nsvg\nmermaid\n');
  });
});
