import { closeSync, fstatSync, openSync, statfsSync } from 'node:fs';
import { commandKernel } from '../apply/command-kernel.js';
import { NamespaceError, type Namespace, type Platform } from './platform.js';
import { processRunner } from './node/runner.js';
import { nodeLock } from './node/lock.js';

/*
 * The Node platform (platform.ts says what a platform is). Node cannot enter a namespace nor speak
 * netlink: commands in another namespace run under nsenter given the namespace's descriptor,
 * routing and addresses go through `ip`, and the run lock of another namespace is held by a child
 * there. What only some runs need (execa, the probe) is loaded when first used.
 */

/** O_PATH (Linux, every architecture Node runs on): the name resolved, nothing opened for reading. */
const O_PATH = 0o10000000;
/** statfs(2)'s f_type of nsfs, where namespace files live. */
const NSFS_MAGIC = 0x6e736673;

function kindOf(fd: number): string {
  const st = fstatSync(fd);
  const kind = st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isFile() ? 'a regular file' : undefined;
  return kind === undefined ? 'is not a network namespace' : `is not a network namespace (${kind})`;
}

export const platform = {
  name: 'node',
  async openNamespace(file, given) {
    let pathFd: number;
    try {
      pathFd = openSync(file, O_PATH);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new NamespaceError(file, code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code ?? String(err)})`);
    }
    let fd: number;
    try {
      // Through our descriptor: the file we opened, not whatever the path names by now.
      const self = `/proc/self/fd/${pathFd}`;
      if (statfsSync(self).type !== NSFS_MAGIC) throw new NamespaceError(file, kindOf(pathFd));
      fd = openSync(self, 'r');
    } finally {
      closeSync(pathFd);
    }
    // Its type: Node cannot ask (NS_GET_NSTYPE), nsenter can: entering it as a network namespace
    // fails for any other kind. The id read there is the kernel's name for it.
    const ns: Namespace = { given, file, fd, id: '' };
    const r = await processRunner(ns, { timeoutMs: 10_000 }).run(['readlink', '/proc/self/ns/net']);
    const id = r.stdout.trim();
    if (r.exitCode !== 0 || !/^net:\[\d+\]$/.test(id)) {
      closeSync(fd);
      throw new NamespaceError(file, /Invalid argument/.test(r.stderr) ? 'is a namespace, but not a network namespace' : `cannot be entered (${r.stderr.trim() || `exit ${r.exitCode}`})`);
    }
    return { ...ns, id };
  },
  closeNamespace(ns) {
    try {
      closeSync(ns.fd);
    } catch {
      // already closed
    }
  },
  runner: processRunner,
  kernel: (ns, runner) => commandKernel(runner, ns === undefined, ns === undefined ? '(this namespace)' : `(in ${ns.file}, ${ns.id})`),
  lock: nodeLock,
  selfCommand() {
    const script = process.argv[1];
    return script === undefined ? [process.execPath] : [process.execPath, script];
  },
  async runProbe(o) {
    return (await import('../apply/validate.js')).runProbe(o);
  },
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
} satisfies Platform;

