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
});

let exitCode: number | undefined;
/* This executable's path is read (readlink) only if something asks for it: the hot path does not. */
let self: string | undefined;
const selfPath = (): string => (self ??= h.selfPath());
const processShim = {
  get argv(): string[] {
    return ['istio-iptables', selfPath(), ...h.argv];
  },
  get execPath(): string {
    return selfPath();
  },
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
};
(globalThis as { process?: unknown }).process = processShim;
