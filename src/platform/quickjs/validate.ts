/**
 * apply/validate.ts for the entrypoint (scripts/bundle-quickjs.mjs puts this module in its
 * place): the same probe (apply/probe.ts says what it does and who decides) on the runtime's
 * non-blocking sockets, waited on in its event loop (native/probe.c). Listeners and client run
 * in this process: the client's sockets are the proxy's, made with its uid/gid as the
 * file-system ids of the moment (what the kernel's owner matches read), so no process is
 * started and no file is read to run the client, wherever this executable is installed.
 */
import { host } from '../host.js';
import { ProbeJudge, probeAddresses, probeSource, socketTable, type ProbeOptions, type ProbeResult } from '../../apply/probe.js';

export type { ProbeOptions } from '../../apply/probe.js';

const h = host!;

/** How to run this program again: this executable. */
export function selfCommand(): string[] {
  return [h.selfPath()];
}

const ready = (fd: number, what: 'r' | 'w', ms: number): Promise<boolean> => new Promise((resolve) => h.wait(fd, what, Math.max(0, ms), resolve));
const sleep = (ms: number): Promise<unknown> => new Promise((resolve) => h.wait(-1, 'r', ms, resolve));

/**
 * One connection of the client: established (reported to the judge with its local port), the
 * token sent, then held until the far end closes it or answers; each wait bounded by 1 s and the deadline.
 * Throws only when the proxy's socket cannot be made (then the client cannot run at all).
 */
async function attempt(o: ProbeOptions, target: string, judge: ProbeJudge, deadline: number): Promise<void> {
  const budget = (): number => Math.min(1000, deadline - h.now());
  const fd = h.socket(o.family === 'ipv4' ? 4 : 6, o.uid, o.gid);
  try {
    if (!h.connect(fd, target, o.probePort, probeSource(target))) {
      if (!(await ready(fd, 'w', budget()))) return;
      const error = h.socketError(fd);
      if (error !== null) return judge.clientFailed(error);
    }
    judge.clientConnected(h.address(fd, false).port);
    const token = judge.token;
    for (let sent = 0; sent < token.length; ) {
      const n = h.send(fd, token.slice(sent));
      if (n >= 0) sent += n;
      else if (!(await ready(fd, 'w', budget()))) return;
    }
    // Held until the far end closes it; our listeners never answer, so anything heard is not them.
    while (!judge.passed && (await ready(fd, 'r', budget()))) {
      if (h.recv(fd) !== null) return;
    }
  } catch (err) {
    judge.clientFailed((err as { code?: string }).code ?? 'error'); // refused, reset, ...: tried again until the deadline
  } finally {
    h.close(fd);
  }
}

/** The client: connects until the judge has its proof or the deadline passed; why it could not run, if so. */
async function client(o: ProbeOptions, target: string, judge: ProbeJudge, deadline: number): Promise<string | undefined> {
  while (!judge.passed && h.now() < deadline) {
    try {
      await attempt(o, target, judge, deadline);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EPERM') return `cannot make a socket as uid ${o.uid} gid ${o.gid}: this process runs as neither, and without CAP_SETUID and CAP_SETGID`;
      return err instanceof Error ? err.message : String(err);
    }
    if (!judge.passed) await sleep(Math.max(0, Math.min(200, deadline - h.now())));
  }
  return undefined;
}

/** The kernel's socket table as it is now (read before the connection is closed), or why it could not be read. */
function kernelTable(family: ProbeOptions['family']): string | Error {
  try {
    return h.readFile(socketTable(family));
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** A listener: each connection's data read until it holds the token (then told to the judge), then closed. */
function serve(listener: number, port: number, judge: ProbeJudge, open: Set<number>): void {
  const drop = (c: number): void => {
    open.delete(c);
    h.close(c);
  };
  const read = (c: number, got: string): void =>
    h.wait(c, 'r', 2000, (isReady) => {
      if (!open.has(c)) return;
      try {
        const d = isReady ? h.recv(c) : '';
        if (d === '') return drop(c);
        const all = got + (d ?? '');
        if (!all.includes(judge.token)) return all.length > 4096 ? drop(c) : read(c, all);
        const peer = h.address(c, true);
        judge.tokenReceived(peer.address, peer.port, port, kernelTable(judge.options.family));
      } catch {
        // reset by the far end: nothing to hear
      }
      drop(c);
    });
  const accept = (): void =>
    h.wait(listener, 'r', -1, () => {
      if (!open.has(listener)) return;
      try {
        for (let c = h.accept(listener); c >= 0; c = h.accept(listener)) {
          open.add(c);
          read(c, '');
        }
      } catch {
        // a failed accept leaves the listener listening
      }
      accept();
    });
  accept();
}

export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const { listenHost, target } = probeAddresses(o.family);
  // 122 random bits from the kernel, fresh at each read.
  const judge = new ProbeJudge(o, h.readFile('/proc/sys/kernel/random/uuid').trim().replace(/-/g, ''));
  const open = new Set<number>();
  const listening: number[] = [];
  try {
    for (const port of o.listenPorts) {
      const fd = h.socket(o.family === 'ipv4' ? 4 : 6);
      open.add(fd);
      try {
        h.listen(fd, listenHost, port);
        listening.push(port);
        serve(fd, port, judge, open);
      } catch {
        open.delete(fd);
        h.close(fd);
      }
    }
    if (listening.length === 0) return judge.result(listening);
    const clientError = await client(o, target, judge, h.now() + o.timeoutMs);
    return judge.result(listening, clientError);
  } finally {
    for (const fd of open) h.close(fd);
  }
}
