import { chmodSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { TestProject } from 'vitest/node';

/** The checkout the tests run from. */
const CHECKOUT = fileURLToPath(new URL('../../', import.meta.url));

declare module 'vitest' {
  export interface ProvidedContext {
    /** This run's mark in the names of the namespaces its tests make (test/kernel/netns.ts). */
    netnsRun: string;
  }
}

/**
 * Kernel tests need root, network namespaces, iptables (both backends) and iproute2. When any is
 * missing they fail here, loudly, instead of skipping: CI installs them (.ci/run).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('kernel tests must run as root (they create network namespaces)');
  for (const bin of ['ip', 'iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-restore', 'ip6tables-legacy-restore', 'iptables-legacy-save', 'ip6tables-legacy-save', 'nft', 'flock', 'setpriv', 'setcap', 'python3']) {
    const r = await execa('sh', ['-c', `command -v ${bin}`], { reject: false });
    if (r.exitCode !== 0) problems.push(`${bin} not found (apt-get install -y iptables iproute2)`);
  }
  if (problems.length > 0) throw new Error(`kernel test prerequisites missing:\n- ${problems.join('\n- ')}`);
  // Two of Istio's cases name groups ("java", "ftp"); iptables resolves names when rules load.
  for (const group of ['java', 'ftp']) {
    const known = await execa('getent', ['group', group], { reject: false });
    if (known.exitCode !== 0) await execa('groupadd', ['--force', group]);
  }
  // Every test removes its namespaces in a finally; one that outlived its timeout (a hang case
  // past vitest's limit) may not have yet. Those this run made and left, with no process in them,
  // are removed at the end and named. This run's are told by the mark in their names
  // (iit-<run>-..., test/kernel/netns.ts), not by when they appeared: a suite running beside this
  // one (another checkout) makes namespaces too, and they are not ours to remove.
  const run = String(process.pid);
  project.provide('netnsRun', run);
  // The kernel tests run from a checkout that no other user can enter, wherever it was cloned:
  // as a root user's clone under /root (0700) is, or one under `mktemp -d`. A test that runs a
  // file of the checkout as the proxy's uid or as uid 65534 (the probe client re-executing the
  // CLI did) then fails here too, not only on such a machine. The mode is put back at the end.
  const mode = statSync(CHECKOUT).mode & 0o7777;
  chmodSync(CHECKOUT, 0o700);
  const reach = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', `${CHECKOUT}package.json`], { reject: false });
  if (reach.exitCode === 0) {
    chmodSync(CHECKOUT, mode);
    throw new Error(`kernel tests: uid 65534 can still read ${CHECKOUT}package.json after chmod 700 ${CHECKOUT}`);
  }
  return async () => {
    chmodSync(CHECKOUT, mode);
    const left = (await ourNamespaces()).filter((n) => n.startsWith(`iit-${run}-`));
    const removed: string[] = [];
    for (const name of left) {
      const pids = await execa('ip', ['netns', 'pids', name], { reject: false });
      if (pids.exitCode === 0 && pids.stdout.trim() === '' && (await execa('ip', ['netns', 'del', name], { reject: false })).exitCode === 0) removed.push(name);
    }
    if (left.length > 0) process.stderr.write(`kernel tests left ${left.length} network namespace(s); removed ${removed.length}: ${left.join(', ')}\n`);
  };
}

async function ourNamespaces(): Promise<string[]> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  return r.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith('iit-'));
}
