import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { type Block, consoleSteps, docPages, fencedBlocks, isShell, markerOf, matchesShown } from '../support/docs.js';
import { createNetns, withNetns } from './netns.js';

/**
 * Every shell example of README.md, docs/ and container/README.md that needs nothing the tests
 * lack (test/docs.test.ts checks those that do say so) runs here, once with each program as
 * `istio-iptables`: the Node CLI and the entrypoint. Each block runs as root inside a network
 * namespace made for it, with a private /run/netns (so an example's `ip netns add demo` makes a
 * namespace only this block sees, gone with it) and an empty working directory: whatever an
 * example applies, it applies there, never to the host. `sh`/`bash` blocks must exit 0; a
 * `console` block's output (stdout and stderr, as a terminal shows them) must be what the page
 * shows; a file an example writes at a path the repository has must equal the repository's.
 */

const PROGRAMS = {
  'Node CLI': join(ROOT, 'bin/istio-iptables.js'),
  entrypoint: join(ROOT, 'dist/entrypoint/istio-iptables'),
} as const;

/** README's first block is the fresh machine's two commands, checked by test/docs.test.ts (it would run npm ci and this suite). */
const runnable: Block[] = docPages()
  .flatMap((p) => fencedBlocks(p))
  .filter(isShell)
  .filter((b, i) => !(b.page === 'README.md' && i === 0))
  .filter((b) => markerOf(b) === undefined);

const scratch = mkdtempSync(join(tmpdir(), 'iit-docs-'));
chmodSync(scratch, 0o755);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A directory whose `istio-iptables` is the program. */
function binDir(program: string): string {
  const dir = mkdtempSync(join(scratch, 'bin-'));
  symlinkSync(program, join(dir, 'istio-iptables'));
  return dir;
}

const PATH = [dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
const STEP = '@@docs-step@@';

/** Run a script as root in a fresh network namespace with its own /run/netns; stdout and stderr as one stream. */
async function inSandbox(bin: string, work: string, body: string): Promise<{ exitCode: number; output: string }> {
  const script = [
    'mount -t tmpfs docs-netns /run/netns || exit 97', // this mount namespace's own: `ip netns exec` made it a slave of the host's
    `cd ${work}`,
    `export PATH=${bin}:${PATH} HOME=${work} SHELL=/bin/bash LC_ALL=C`,
    'exec 2>&1',
    body,
  ].join('\n');
  const ns = await createNetns('docs');
  try {
    const r = await execa('ip', ['netns', 'exec', ns.name, 'bash', '-c', script], { reject: false, timeout: 180_000, env: { PATH }, extendEnv: false, stripFinalNewline: false });
    return { exitCode: r.exitCode ?? -1, output: r.stdout };
  } finally {
    await ns.remove();
  }
}

/** Files under `dir`, relative to it. */
function filesUnder(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p, base) : [relative(base, p)];
  });
}

describe.each(Object.entries(PROGRAMS))('shell examples run with the %s as istio-iptables', (_name, program) => {
  const bin = binDir(program);

  it('are many, from every kind of page', () => {
    expect(runnable.length).toBeGreaterThanOrEqual(20);
    for (const page of ['README.md', 'docs/applying.md', 'docs/explain.md', 'docs/command-line.md']) expect(runnable.some((b) => b.page === page), page).toBe(true);
  });

  it.each(runnable.map((b) => [`${b.page}:${b.line}`, b] as const))('%s', async (_at, block) => {
    const work = mkdtempSync(join(scratch, 'work-'));
    chmodSync(work, 0o755);
    const text = block.body.join('\n');
    // Directories the example writes into (`> docs/pictures/x.svg`) exist, as in a checkout.
    for (const m of text.matchAll(/>\s*([\w.-]+(?:\/[\w.-]+)+)/g)) mkdirSync(join(work, dirname(m[1] as string)), { recursive: true });

    if (block.lang === 'console') {
      const steps = consoleSteps(block);
      const r = await inSandbox(bin, work, steps.map((s) => `echo '${STEP}'\n${s.command}`).join('\n'));
      expect(r.exitCode, r.output).not.toBe(97);
      const outputs = r.output.split(`${STEP}\n`).slice(1);
      expect(outputs.length, r.output).toBe(steps.length);
      steps.forEach((s, i) => {
        const got = outputs[i] as string;
        expect(matchesShown(s.expected, got), `$ ${s.command}\n--- the page shows ---\n${s.expected.join('\n')}\n--- it printed ---\n${got}`).toBe(true);
      });
    } else {
      const r = await inSandbox(bin, work, `set -euo pipefail\n${text}`);
      expect(r.exitCode, r.output).toBe(0);
    }

    for (const f of filesUnder(work)) {
      const theirs = join(ROOT, f);
      if (existsSync(theirs) && statSync(theirs).isFile()) expect(readFileSync(join(work, f), 'utf8'), `${f} as the example makes it`).toBe(readFileSync(theirs, 'utf8'));
    }
  });
});

/**
 * docs/istio.md says what `kubectl debug` must give this image to read a live pod: diff needs
 * NET_ADMIN (and NET_RAW for the legacy backend; kubectl's netadmin profile adds both), trace
 * nothing. Checked as the debug container runs, inside the pod's namespace, with only those
 * capabilities (root's bounding set cut down, nothing inheritable).
 */
describe("the capabilities docs/istio.md names for kubectl debug", () => {
  const EP = PROGRAMS.entrypoint;
  const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
  const withCaps = (caps: string, ...cmd: string[]): [string, string[]] => ['setpriv', ['--bounding-set', caps, '--inh-caps=-all', ...cmd]];

  it('diff: no capability fails; NET_ADMIN reads the nft backend; NET_ADMIN and NET_RAW read both', async () => {
    for (const backend of ['nft', 'legacy'] as const) {
      await withNetns(`docs-caps-${backend}`, async (ns) => {
        const applied = await ns.run(EP, [...SIDECAR, '--force-iptables-binary', backend]);
        expect(applied.exitCode, applied.stderr).toBe(0);
        const none = await ns.run(...withCaps('-all', EP, 'diff', ...SIDECAR));
        expect(none.exitCode, none.stdout).not.toBe(0);
        expect(none.stderr).toMatch(/Permission denied|Operation not permitted/);
        const netadmin = await ns.run(...withCaps('-all,+net_admin,+net_raw', EP, 'diff', ...SIDECAR));
        // (The plan has no IPv6 rules: that family is compared too, and found to hold none of ours.)
        const synced = `ipv4: in sync with the plan (${backend} backend)\nipv6: in sync with the plan (${backend} backend; the plan has no rules for this family)`;
        expect([netadmin.exitCode, netadmin.stdout]).toEqual([0, synced]);
        if (backend === 'nft') {
          const adminOnly = await ns.run(...withCaps('-all,+net_admin', EP, 'diff', ...SIDECAR));
          expect([adminOnly.exitCode, adminOnly.stdout]).toEqual([0, synced]);
        }
      });
    }
  });

  it('trace: none, as the non-root image runs under kubectl\'s restricted profile (uid 65534, no capability, no_new_privs)', async () => {
    const dir = mkdtempSync(join(scratch, 'caps-'));
    chmodSync(dir, 0o755);
    const copy = join(dir, 'istio-iptables');
    copyFileSync(EP, copy);
    chmodSync(copy, 0o755);
    await execa('setcap', ['cap_net_admin+p', copy]); // as the non-root image has it
    const r = await execa('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--no-new-privs', '--bounding-set', '-all', '--inh-caps=-all', copy, 'trace', ...SIDECAR, '--enable-ipv6=false', 'outbound', 'tcp', '10.0.0.5', '10.96.0.10:443', 'uid=1000'], { reject: false, timeout: 30_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('verdict: redirect to port 15001');
  });
});
