import { host, type Host } from '../host.js';
import { LOCK_NAME } from '../../apply/commands.js';
import { NamespaceError, type Namespace, type Platform } from '../platform.js';
import { hostRunner } from './runner.js';
import { dump, netlinkAddresses, netlinkRoutes } from './netlink.js';

/*
 * The entrypoint's platform (platform.ts says what a platform is; scripts/bundle-quickjs.mjs puts
 * this module in place of platform/node.ts and checks that their exports match). The runtime does
 * itself what Node runs programs for: it enters a namespace by its descriptor (a child between fork
 * and exec, a socket or a /proc file for as long as it takes to make or open it), speaks netlink
 * for routing, addresses and nf_tables' table list, and holds the run lock with its own sockets.
 */

const h: Host = host as Host;
const where = (ns: Namespace | undefined): string => (ns === undefined ? '(this namespace)' : `(in ${ns.file}, ${ns.id})`);

export const platform = {
  name: 'quickjs',
  openNamespace(file, given) {
    try {
      const { fd, id } = h.openNamespace(file);
      return Promise.resolve({ given, file, fd, id });
    } catch (err) {
      const e = err as { code?: string; found?: string };
      const found = e.code === 'ENOTNETNS' ? (e.found ?? 'is not a network namespace') : e.code === 'ENOENT' ? 'does not exist' : `cannot be opened (${e.code ?? String(err)})`;
      return Promise.reject(new NamespaceError(file, found));
    }
  },
  closeNamespace: (ns) => h.close(ns.fd),
  runner: (ns, options) => hostRunner(h, ns, options),
  kernel(ns) {
    const fd = ns?.fd ?? null;
    return {
      routes: netlinkRoutes(h, fd),
      addresses: () => Promise.resolve({ value: netlinkAddresses(h, fd), source: where(ns) }),
      netFile(path) {
        const fact = (value: string | undefined) => Promise.resolve({ value, source: `${path} ${where(ns)}` });
        try {
          return fact(fd === null ? h.readFile(path) : h.readFile(path, fd));
        } catch (err) {
          if ((err as { code?: string }).code === 'ENOENT') return fact(undefined);
          return Promise.reject(err);
        }
      },
      tables: (family) => Promise.resolve(dump(() => h.netlinkTables(fd, family === 'ipv4' ? 4 : 6))),
    };
  },
  lock(ns) {
    return {
      attempt: () => Promise.resolve(h.lockAttempt(LOCK_NAME, ns?.fd ?? null)),
      keep: () => h.lockKeep(),
      release: () => h.lockRelease(),
    };
  },
  selfCommand: () => [h.selfPath()],
  async runProbe(o) {
    return (await import('./validate.js')).runProbe(o);
  },
  now: () => h.now(),
  sleep: (ms) => new Promise<void>((resolve) => h.wait(-1, 'r', ms, () => resolve())),
} satisfies Platform;
