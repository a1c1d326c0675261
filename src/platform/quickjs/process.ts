/**
 * The slice of Node's `process` global the CLI uses, on the QuickJS runtime's host calls. Imported
 * first by the QuickJS entrypoint, so it is in place before any other module runs.
 */
import { host } from '../host.js';

if (host === undefined) throw new Error('the QuickJS entrypoint runs only on its own runtime (native/host.c)');
const h = host;

const stream = (fd: 1 | 2) => ({
  write(text: string): boolean {
    h.write(fd, text);
    return true;
  },
  columns: undefined,
  isTTY: false,
});

let exitCode: number | undefined;
const self = h.selfPath();
const processShim = {
  argv: ['istio-iptables', self, ...h.argv],
  execPath: self,
  // The runtime's own object (made at start-up for this process), as Node's process.env is.
  env: h.env as Record<string, string>,
  stdout: stream(1),
  stderr: stream(2),
  get exitCode(): number | undefined {
    return exitCode;
  },
  set exitCode(code: number | undefined) {
    exitCode = code;
    h.setExitCode(code ?? 0);
  },
  getuid: () => h.getuid(),
  getgid: () => h.getgid(),
  platform: 'linux',
  versions: {},
};
(globalThis as { process?: unknown }).process = processShim;

// ES2022 library calls that QuickJS 2021-03-27 predates.
if (Object.hasOwn === undefined) {
  Object.defineProperty(Object, 'hasOwn', {
    value: (o: object, k: PropertyKey) => Object.prototype.hasOwnProperty.call(o, k),
    writable: true,
    configurable: true,
  });
}
for (const proto of [Array.prototype, String.prototype] as { at?: unknown }[]) {
  if (proto.at === undefined) {
    Object.defineProperty(proto, 'at', {
      value(this: { length: number; [i: number]: unknown }, i: number) {
        const k = Math.trunc(i) || 0;
        return this[k < 0 ? this.length + k : k];
      },
      writable: true,
      configurable: true,
    });
  }
}
