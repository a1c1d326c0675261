/**
 * apply/validate.ts for the entrypoint (scripts/bundle-quickjs.mjs puts this module in its
 * place): the same probe (apply/probe.ts) on the runtime's non-blocking sockets, waited on in its
 * event loop (native/probe.c). The client runs as the proxy's uid/gid in a child: this executable
 * again, started by the runtime with the ids set between fork and exec, running only the client.
 */
import { host } from '../host.js';
import { PROBE_CLIENT_COMMAND } from '../../args.js';
import { probeAddresses, probeResult, probeSource, type ProbeOptions, type ProbeResult } from '../../apply/probe.js';

export type { ProbeOptions } from '../../apply/probe.js';

const h = host!;

/** How to run this program again: this executable. */
export function selfCommand(): string[] {
  return [h.selfPath()];
}

const ready = (fd: number, what: 'r' | 'w', ms: number): Promise<boolean> => new Promise((resolve) => h.wait(fd, what, Math.max(0, ms), resolve));
const sleep = (ms: number): Promise<unknown> => new Promise((resolve) => h.wait(-1, 'r', ms, resolve));

/** One connection: the token sent, true once it came back; each wait bounded by 1 s and the deadline. */
async function attempt(address: string, port: number, token: string, deadline: number): Promise<boolean> {
  const budget = (): number => Math.min(1000, deadline - h.now());
  let fd = -1;
  try {
    fd = h.socket(address.includes(':') ? 6 : 4);
    if (!h.connect(fd, address, port, probeSource(address)) && (!(await ready(fd, 'w', budget())) || h.socketError(fd) !== null)) return false;
    for (let sent = 0; sent < token.length; ) {
      const n = h.send(fd, token.slice(sent));
      if (n >= 0) sent += n;
      else if (!(await ready(fd, 'w', budget()))) return false;
    }
    let got = '';
    while (!got.includes(token)) {
      if (!(await ready(fd, 'r', budget()))) return false;
      const d = h.recv(fd);
      if (d === '') return false;
      got += d ?? '';
    }
    return true;
  } catch {
    return false; // refused, reset, ...: tried again until the deadline
  } finally {
    h.close(fd);
  }
}

/** Connect until the token comes back or timeoutMs has passed. */
export async function probeClient(address: string, port: number, token: string, timeoutMs: number): Promise<boolean> {
  const deadline = h.now() + timeoutMs;
  for (;;) {
    if (await attempt(address, port, token, deadline)) return true;
    if (h.now() > deadline) return false;
    await sleep(200);
  }
}

/** A listener: each connection that sends the token gets it back, then is closed. */
function serve(listener: number, token: string, open: Set<number>): void {
  const drop = (c: number): void => {
    open.delete(c);
    h.close(c);
  };
  const echo = (c: number, got: string): void =>
    h.wait(c, 'r', 2000, (isReady) => {
      if (!open.has(c)) return;
      try {
        const d = isReady ? h.recv(c) : '';
        if (d === '') return drop(c);
        const all = got + (d ?? '');
        if (!all.includes(token)) return echo(c, all);
        h.send(c, token);
      } catch {
        // reset by the client: nothing to answer
      }
      drop(c);
    });
  const accept = (): void =>
    h.wait(listener, 'r', -1, () => {
      if (!open.has(listener)) return;
      try {
        for (let c = h.accept(listener); c >= 0; c = h.accept(listener)) {
          open.add(c);
          echo(c, '');
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
  const token = h.readFile('/proc/sys/kernel/random/uuid').trim().replace(/-/g, '');
  const open = new Set<number>();
  const listening: number[] = [];
  try {
    for (const port of o.listenPorts) {
      const fd = h.socket(o.family === 'ipv4' ? 4 : 6);
      open.add(fd);
      try {
        h.listen(fd, listenHost, port);
        listening.push(port);
        serve(fd, token, open);
      } catch {
        open.delete(fd);
        h.close(fd);
      }
    }
    if (listening.length === 0) return probeResult(o, listening, false);
    // The client as the proxy's uid/gid (the runtime leaves the ids alone when they are ours already).
    const stdout = await new Promise<string>((resolve) =>
      h.spawn(
        ['/proc/self/exe', PROBE_CLIENT_COMMAND, target, String(o.probePort), token, String(o.timeoutMs)],
        null,
        null,
        o.timeoutMs + 3000,
        (_code, _signal, out) => resolve(out),
        o.uid,
        o.gid,
      ),
    );
    return probeResult(o, listening, stdout === 'ok');
  } finally {
    for (const fd of open) h.close(fd);
  }
}
