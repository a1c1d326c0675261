import { chmodSync, copyFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { withNetns, type Netns } from './netns.js';

/**
 * The validation probe decided by our own listener (src/apply/probe.ts), through both runtimes
 * (the Node CLI and the entrypoint, and the entrypoint's ASan/UBSan build for the probe's native
 * sockets), inside the namespace and with --network-namespace, IPv4 and
 * IPv6: an unprivileged process in the pod listening where the probe connects (127.0.0.6:15002,
 * [::6]:15002) that echoes what it hears, or relays it to our listener, must not make a namespace
 * without rules pass (126); with the rules the probe passes (0) while it still listens. And the
 * probe's client starts wherever the program is installed (a copy under a 0700 directory), and
 * says why when it cannot.
 */

const PATH = process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin';
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];

interface Program {
  readonly name: string;
  readonly argv: readonly string[];
  /** Environment beside PATH (the sanitizers' options). */
  readonly env?: Readonly<Record<string, string>>;
}
const programs = (root: string): Program[] => [
  { name: 'node bin', argv: [process.execPath, join(root, 'bin/istio-iptables.js')] },
  { name: 'entrypoint', argv: [join(root, 'dist/entrypoint/istio-iptables')] },
];
/** The entrypoint built with ASan and UBSan: the probe's native sockets (native/probe.c) under the sanitizers; any finding fails the run. */
const SANITIZED: Program = {
  name: 'entrypoint under ASan and UBSan',
  argv: [join(ROOT, 'dist/entrypoint-asan/istio-iptables')],
  env: { ASAN_OPTIONS: 'halt_on_error=1:exitcode=99:detect_leaks=0', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=98' },
};
const SANITIZER_REPORT = /AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:/;

const SIDECAR = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT'];
const CONFIGS = {
  ipv4: [...SIDECAR, '-i', '*', '-b', '*', '--enable-ipv6=false'],
  // IPv4 not captured at all: the probe goes to ::6 over IPv6.
  ipv6: [...SIDECAR, '-i', 'fd00::/8', '-b', '', '--enable-ipv6'],
} as const;
type Family = keyof typeof CONFIGS;
const TARGET: Record<Family, { host: string; loopback: string; shown: string }> = {
  ipv4: { host: '127.0.0.6', loopback: '127.0.0.1', shown: '127\\.0\\.0\\.6:15002' },
  ipv6: { host: '::6', loopback: '::1', shown: '::6:15002' },
};

/**
 * What listens at the probe address, as uid 65534 (anyone in the pod can bind there): it prints
 * "listening", then one line per connection it took. The echo sends back what it hears; the relay
 * forwards each connection to our inbound listener, from the client's own port when the kernel
 * lets it bind there (a Node client binds with SO_REUSEADDR), else from any port.
 */
const HOSTILE = {
  echo: `
const net = require('node:net');
net.createServer((s) => { console.log('connection'); s.on('error', () => {}); s.pipe(s); }).listen(15002, process.argv[1], () => console.log('listening'));
`,
  relay: `
const net = require('node:net');
const [host, loopback] = process.argv.slice(1);
net.createServer((s) => {
  console.log('connection');
  s.on('error', () => {});
  const relay = (options) => {
    const u = net.connect(options);
    u.on('connect', () => { s.pipe(u); u.pipe(s); });
    u.on('error', () => (options.localPort === undefined ? s.destroy() : relay({ host: loopback, port: 15006 })));
  };
  relay({ host: loopback, port: 15006, localAddress: loopback, localPort: s.remotePort });
}).listen(15002, host, () => console.log('listening'));
`,
} as const;
type Hostile = keyof typeof HOSTILE;

/** Start a hostile listener in the namespace; resolves once it listens. */
async function startHostile(ns: Netns, kind: Hostile, family: Family): Promise<{ connections: () => number; stop: () => Promise<void> }> {
  const child = execa('ip', ['netns', 'exec', ns.name, ...NOBODY, process.execPath, '-e', HOSTILE[kind], TARGET[family].host, TARGET[family].loopback], {
    reject: false,
    env: {},
    extendEnv: false,
    cwd: '/',
  });
  let out = '';
  const listening = new Promise<void>((resolve, reject) => {
    const limit = setTimeout(() => reject(new Error(`the ${kind} listener did not start: ${out}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) {
        clearTimeout(limit);
        resolve();
      }
    });
    void child.then((r) => {
      clearTimeout(limit);
      reject(new Error(`the ${kind} listener ended: ${String(r.stderr)}`));
    });
  });
  await listening;
  return {
    connections: () => out.split('\n').filter((l) => l === 'connection').length,
    stop: async () => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      await child;
    },
  };
}

type Way = 'inside' | '--network-namespace';
const run = (program: Program, way: Way, ns: Netns, args: readonly string[]) =>
  way === 'inside'
    ? execa('ip', ['netns', 'exec', ns.name, ...program.argv, ...args], { reject: false, env: { PATH, ...program.env }, extendEnv: false, timeout: 60_000 })
    : execa(program.argv[0] ?? '', [...program.argv.slice(1), ...args, '--network-namespace', ns.name], { reject: false, env: { PATH, ...program.env }, extendEnv: false, timeout: 60_000 });

/** ::6 on lo, as a namespace holds it after a dual-stack run: the address a hostile listener binds to. */
async function prepare(ns: Netns, family: Family): Promise<void> {
  if (family === 'ipv6') expect((await ns.run('ip', ['-6', 'addr', 'add', '::6/128', 'dev', 'lo', 'nodad'])).exitCode).toBe(0);
}

const CASES = (['ipv4', 'ipv6'] as const).flatMap((family) => (['echo', 'relay'] as const).flatMap((hostile) => (['inside', '--network-namespace'] as const).map((way) => [family, hostile, way] as const)));

describe.each([...programs(ROOT), SANITIZED])('validation with a hostile listener at the probe address ($name)', (program) => {
  it.each(CASES)('%s, %s as uid 65534, %s: 126 without the rules, 0 with them', async (family, hostile, way) => {
    await withNetns('vhostile', async (ns) => {
      await prepare(ns, family);
      const h = await startHostile(ns, hostile, family);
      try {
        const before = await run(program, way, ns, [...CONFIGS[family], '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s']);
        expect(before.stderr).not.toMatch(SANITIZER_REPORT);
        expect(before.exitCode, before.stderr).toBe(126);
        // The hostile listener took the client's connections; our listener's verdict says so.
        expect(h.connections()).toBeGreaterThan(0);
        const t = TARGET[family].shown;
        expect(before.stderr).toMatch(new RegExp(`validation failed.*${t} did not reach .*: .*the client connected (once|\\d+ times), never to our listener: something else accepts connections at ${t}`));
        if (hostile === 'relay') expect(before.stderr).toMatch(/the token came to port 15006 from \S+ (on a connection made to it directly, not through the redirect|not from the client's own socket) \(relayed\?\), which does not count/);
        const applied = await run(program, way, ns, [...CONFIGS[family], '--run-validation', '--probe-timeout', '3s']);
        expect(applied.stderr).not.toMatch(SANITIZER_REPORT);
        expect(applied.exitCode, applied.stderr).toBe(0);
        expect(applied.stderr).toMatch(new RegExp(`validation passed: ${t} reached our listener on \\S+ \\(15001, 15006\\): port 15006 received the token from the client's socket \\S+`));
      } finally {
        await h.stop();
      }
    });
  });
});

const temporary: string[] = [];
afterAll(() => {
  for (const d of temporary) rmSync(d, { recursive: true, force: true });
});

/** A copy of the programs under a directory of mode `mode` (mkdtemp makes it 0700): bin, dist (without the sanitizer and trace builds), package.json, node_modules linked. */
function installCopy(mode: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'iit-install-'));
  temporary.push(dir);
  chmodSync(dir, mode);
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true, filter: (src) => !/dist\/entrypoint-(asan|trace)/.test(src) });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

describe('the probe client starts wherever the program is installed', () => {
  const dir = installCopy(0o700);

  it('the copy is out of the proxy uid\'s reach (0700, as /root)', async () => {
    const r = await execa('setpriv', ['--reuid=1337', '--regid=1337', '--clear-groups', 'test', '-r', join(dir, 'bin/istio-iptables.js')], { reject: false });
    expect(r.exitCode).toBe(1);
  });

  it.each(programs(dir).flatMap((program) => (['ipv4', 'ipv6'] as const).flatMap((family) => (['inside', '--network-namespace'] as const).map((way) => [program.name, family, way, program] as const))))(
    '%s from a 0700 directory, %s, %s: 126 without the rules (refused, not a client that could not start), 0 with them',
    async (_name, family, way, program) => {
      await withNetns('v0700', async (ns) => {
        const before = await run(program, way, ns, [...CONFIGS[family], '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s']);
        expect(before.exitCode, before.stderr).toBe(126);
        expect(before.stderr).toMatch(/did not reach .* within 1000 ms: the client's connections failed \((ECONNREFUSED|ENETUNREACH)\)/);
        const applied = await run(program, way, ns, [...CONFIGS[family], '--run-validation', '--probe-timeout', '3s']);
        expect(applied.exitCode, applied.stderr).toBe(0);
        expect(applied.stderr).toMatch(/validation passed: .* received the token from the client's socket/);
      });
    },
  );
});

describe('a probe client that cannot start says why', () => {
  it('Node: a node binary the proxy uid may not execute (mode 0700): the spawn\'s own error', async () => {
    const dir = installCopy(0o755);
    const node = join(dir, 'node-root-only');
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o700);
    await withNetns('vnostart', async (ns) => {
      const r = await execa('ip', ['netns', 'exec', ns.name, node, join(dir, 'bin/istio-iptables.js'), ...CONFIGS.ipv4, '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s'], {
        reject: false,
        env: { PATH },
        extendEnv: false,
        timeout: 60_000,
      });
      expect(r.exitCode, r.stderr).toBe(126);
      expect(r.stderr).toMatch(/validation failed.*the probe client \(uid 1337, gid 1337\) failed: could not start \S*node-root-only as the client: EACCES/);
      expect(r.stderr).not.toMatch(/did not reach/);
    });
  });

  it.each([
    ['the entrypoint', 'dist/entrypoint/istio-iptables', {}],
    ['the entrypoint under ASan and UBSan', 'dist/entrypoint-asan/istio-iptables', SANITIZED.env ?? {}],
  ] as const)('%s: run as uid 65534 without CAP_SETUID, asked to probe as uid 1337: EPERM, said so', async (_name, built, env) => {
    const dir = installCopy(0o755);
    const program = join(dir, 'istio-iptables');
    copyFileSync(join(ROOT, built), program);
    chmodSync(program, 0o755);
    await withNetns('vnoperm', async (ns) => {
      const r = await execa('ip', ['netns', 'exec', ns.name, ...NOBODY, program, ...CONFIGS.ipv4, '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s'], {
        reject: false,
        env: { PATH, ...env },
        extendEnv: false,
        timeout: 60_000,
      });
      expect(r.stderr).not.toMatch(SANITIZER_REPORT);
      expect(r.exitCode, r.stderr).toBe(126);
      expect(r.stderr).toMatch(/validation failed.*the probe client \(uid 1337, gid 1337\) failed: cannot make a socket as uid 1337 gid 1337: this process runs as neither, and without CAP_SETUID and CAP_SETGID/);
    });
  });
});
