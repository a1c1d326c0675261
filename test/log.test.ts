import { describe, expect, it } from 'vitest';
import { createLogger, formatLogLine, logTime } from '../src/log.js';
import { runCli } from './support/cli.js';

/**
 * Istio's log flags and its handling of environment values: --log_as_json lines in Istio's JSON
 * layout (errors included), --log_target, the flags accepted for compatibility, environment
 * values Istio cannot parse ignored with a warning, and bad flag values still rejected.
 */
const BASE = ['-n', '-b', '*', '-i', '*', '--output', 'json'];

function jsonLines(text: string): Record<string, unknown>[] {
  const lines = text.split('\n');
  expect(lines.pop()).toBe('');
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("Istio's log time", () => {
  it.each([
    [0, '1970-01-01T00:00:00.000000Z'],
    [951_782_400_123_456, '2000-02-29T00:00:00.123456Z'],
    [1_709_251_199_999_999, '2024-02-29T23:59:59.999999Z'],
    [4_107_542_400_000_001, '2100-03-01T00:00:00.000001Z'],
    [1_798_761_599_500_000, '2026-12-31T23:59:59.500000Z'],
  ])('%d us is %s', (micros, text) => {
    expect(logTime(micros)).toBe(text);
  });

  it('agrees with the platform clock at millisecond precision over many days', () => {
    for (let ms = -86_400_000 * 365 * 30; ms < 86_400_000 * 365 * 400; ms += 86_400_000 * 37 + 12_345_678) {
      if (ms < 0) continue;
      expect(logTime(ms * 1000).slice(0, 23)).toBe(new Date(ms).toISOString().slice(0, 23));
    }
  });
});

describe('log lines', () => {
  it("JSON: one object per line with Istio's keys in its order (level, time, msg); text unchanged", () => {
    const clock = () => 1_700_000_000_000_001;
    expect(formatLogLine('warn', 'a "quoted"\nmessage', true, clock)).toBe('{"level":"warn","time":"2023-11-14T22:13:20.000001Z","msg":"a \\"quoted\\"\\nmessage"}\n');
    expect(formatLogLine('info', 'plain', false)).toBe('info\tplain\n');
    let out = '';
    const log = createLogger('info', (t) => void (out += t), { json: true, now: clock });
    log.debug('hidden');
    log.info('shown');
    log.error('bad');
    expect(jsonLines(out)).toEqual([
      { level: 'info', time: '2023-11-14T22:13:20.000001Z', msg: 'shown' },
      { level: 'error', time: '2023-11-14T22:13:20.000001Z', msg: 'bad' },
    ]);
  });

  it('--log_as_json: every log line of a run is JSON, and stdout is the plan', async () => {
    const r = await runCli([...BASE, '--log_as_json', '--log_output_level=debug', '--redirect-dns'], { ISTIO_META_DNS_CAPTURE: 'maybe' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty('iptablesRestore');
    const lines = jsonLines(r.stderr);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(['level', 'time', 'msg']);
      expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    }
  });

  it('--log_as_json: the error line is JSON too, exit 1, nothing on stdout', async () => {
    for (const args of [['-p', 'abc'], ['--redirect-dns=yes'], ['-c']]) {
      const r = await runCli(['--log_as_json', ...BASE, ...args]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const [line, ...rest] = jsonLines(r.stderr);
      expect(rest).toEqual([]);
      expect(line?.level).toBe('error');
      expect(String(line?.msg)).toMatch(/invalid value|flag needs an argument/);
    }
    const text = await runCli([...BASE, '-p', 'abc', '--log_as_json=false']);
    expect(text.stderr).toMatch(/^istio-iptables: invalid value "abc" for -p\/--envoy-port/);
  });

  it('--log_target: stdout, stderr or both (repeated); a file is refused', async () => {
    const toStdout = await runCli(['-n', '-b', '*', '--log_target=stdout'], { ISTIO_META_DNS_CAPTURE: 'yes' });
    expect(toStdout.code).toBe(0);
    expect(toStdout.stderr).toBe('');
    expect(toStdout.stdout).toMatch(/^warn\tignoring environment variable ISTIO_META_DNS_CAPTURE="yes"/);
    const both = await runCli(['-n', '-b', '*', '--log_target', 'stdout', '--log_target', 'stderr', '--log_as_json'], { ISTIO_META_DNS_CAPTURE: 'yes' });
    expect(both.code).toBe(0);
    expect(both.stdout).toContain('"msg":"ignoring environment variable ISTIO_META_DNS_CAPTURE=\\"yes\\"');
    expect(both.stderr).toContain('"msg":"ignoring environment variable ISTIO_META_DNS_CAPTURE=\\"yes\\"');
    const file = await runCli([...BASE, '--log_target', 'stderr', '--log_target', '/var/log/x']);
    expect(file.code).toBe(1);
    expect(file.stderr).toBe('istio-iptables: invalid value "/var/log/x" for --log_target: expected stdout or stderr (log files are not written here)\n');
  });

  it('--log_output_level=all:LEVEL sets every scope, the default one included (as Istio)', async () => {
    const r = await runCli([...BASE, '--log_output_level=all:warn'], { ISTIO_META_DNS_CAPTURE: 'yes' });
    expect(r.stderr).toMatch(/^warn\tignoring environment variable ISTIO_META_DNS_CAPTURE="yes": expected true or false\n$/);
    const quiet = await runCli([...BASE, '--log_output_level=default:debug,all:error'], { ISTIO_META_DNS_CAPTURE: 'yes' });
    expect(quiet.stderr).toBe('');
  });

  it("accepts Istio's other log flags with valid values", async () => {
    const r = await runCli([...BASE, '--log_caller=default,ads', '--log_stacktrace_level', 'default:error', '--vklog', '9', '--vklog=-1', '--log_as_json=false']);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('environment values Istio cannot parse are ignored, with a warning naming them', () => {
  it.each([
    ['ISTIO_META_DNS_CAPTURE', 'yes', 'true or false'],
    ['ISTIO_META_DNS_CAPTURE', 'on', 'true or false'],
    ['INVALID_DROP', 'enabled', 'true or false'],
    ['CAPTURE_ALL_DNS', 'sometimes', 'true or false'],
    ['INBOUND_CAPTURE_PORT', 'tcp://10.0.0.1:80', 'a port (this is a Kubernetes service link)'],
    ['INBOUND_TUNNEL_PORT', 'tcp://10.0.0.1:15008', 'a port (this is a Kubernetes service link)'],
    ['IPTABLES_PROBE_PORT', 'tcp://10.0.0.2:15002', 'a port (this is a Kubernetes service link)'],
    ['IPTABLES_PROBE_PORT', 'udp://[fd00::1]:53', 'a port (this is a Kubernetes service link)'],
    ['IPTABLES_PROBE_PORT', '70000', 'a port 0-65535'],
    ['PROBE_TIMEOUT', 'five', 'a duration such as 5s'],
    ['PROBE_TIMEOUT', '5', 'a duration such as 5s'],
  ])('%s=%s', async (name, value, expected) => {
    const r = await runCli(BASE, { [name]: value });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warn\tignoring environment variable ${name}=${JSON.stringify(value)}: expected ${expected}\n`);
    // The plan is the one without the variable.
    const without = await runCli(BASE, {});
    expect(r.stdout).toBe(without.stdout);
  });

  it('falls through to the next variable, as Istio (REDIRECT_DNS when ISTIO_META_DNS_CAPTURE is unreadable)', async () => {
    const r = await runCli(BASE, { ISTIO_META_DNS_CAPTURE: 'yes', REDIRECT_DNS: 'true', DNS_SERVERS: '10.96.0.10' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).iptablesRestore).toContain('--dport 53');
    const off = await runCli(BASE, { ISTIO_META_DNS_CAPTURE: 'yes' });
    expect(JSON.parse(off.stdout).iptablesRestore).not.toContain('--dport 53');
  });

  it('a flag beats the variable, which is then not read (no warning)', async () => {
    const r = await runCli([...BASE, '-z', '15006'], { INBOUND_CAPTURE_PORT: 'tcp://10.0.0.1:80' });
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('INBOUND_CAPTURE_PORT');
  });

  it('other variables holding service links are no concern of ours', async () => {
    const r = await runCli(BASE, { KUBERNETES_PORT: 'tcp://10.96.0.1:443', ISTIO_INBOUND_PORT: 'tcp://10.0.0.5:80' });
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('ignoring');
  });
});

describe('flags stay strictly validated', () => {
  it.each([
    [['--redirect-dns=yes'], /invalid value "yes" for --redirect-dns: expected true or false/],
    [['-z', 'tcp://10.0.0.1:80'], /invalid value "tcp:\/\/10.0.0.1:80" for -z\/--inbound-capture-port: expected a port 1-65535/],
    [['--iptables-probe-port', 'tcp://10.0.0.2:15002'], /for --iptables-probe-port: expected a port 1-65535/],
    [['--probe-timeout', 'five'], /for --probe-timeout: expected a positive duration/],
    [['--log_as_json=yes'], /invalid value "yes" for --log_as_json: expected true or false/],
    [['--vklog', 'x'], /invalid value "x" for --vklog: expected an integer verbosity/],
    [['--vklog', '99999999999'], /for --vklog/],
    [['--log_caller', 'a.b'], /for --log_caller: expected a comma-separated list of log scopes/],
    [['--log_stacktrace_level', 'default:loud'], /for --log_stacktrace_level/],
    [['--log_target', 'stdout,stderr'], /for --log_target: expected stdout or stderr/],
    [['-q', '8080:8000'], /for -q\/--istio-outbound-ports: expected a comma-separated list of ports 0-65535 or ranges such as 8000:8080 \("8080:8000" is neither\)/],
    [['-o', '0:70000'], /for -o\/--istio-local-outbound-ports-exclude/],
    [['-p', '0'], /for -p\/--envoy-port: expected a port 1-65535/],
    [['-z', '0'], /for -z\/--inbound-capture-port/],
  ])('%j', async (args, message) => {
    const r = await runCli([...BASE, ...args]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });
});

describe('port 0 and ranges', () => {
  it('render as iptables and nft take them', async () => {
    const r = await runCli([...BASE, '-d', '15090,15021,0,8080,15020', '-q', '8000:8080,0,9000:9000', '-o', '1:1023', '--native-nftables']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { iptablesRestore: string; nftScript: string };
    expect(plan.iptablesRestore).toContain('-A ISTIO_INBOUND -p tcp --dport 0 -j RETURN');
    expect(plan.iptablesRestore).toContain('-A ISTIO_OUTPUT -p tcp --dport 8000:8080 -j ISTIO_REDIRECT');
    expect(plan.iptablesRestore).toContain('-A ISTIO_OUTPUT -p tcp --dport 9000 -j ISTIO_REDIRECT');
    expect(plan.iptablesRestore).toContain('-A ISTIO_OUTPUT -p udp --dport 1:1023 -j RETURN');
    expect(plan.nftScript).toContain('tcp dport 8000-8080 counter jump istio-redirect');
    expect(plan.nftScript).toContain('udp dport 1-1023 counter return');
    expect(plan.nftScript).toContain('tcp dport 0 counter return');
  });
});
