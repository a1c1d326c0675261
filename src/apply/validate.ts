import { connect, createServer, type Server } from 'node:net';
import { PROBE_CLIENT_COMMAND } from '../args.js';
import { randomBytes } from 'node:crypto';
import { probeAddresses, probeResult, probeSource, type ProbeOptions, type ProbeResult } from './probe.js';

/**
 * The validation probe on Node (apply/probe.ts says what it does; the entrypoint's is
 * platform/quickjs/validate.ts, on the runtime's sockets).
 */
export type { ProbeOptions } from './probe.js';

/** How to run this program again: Node with this script. */
export function selfCommand(): string[] {
  const script = process.argv[1];
  return script === undefined ? [process.execPath] : [process.execPath, script];
}

/** Connect until the token comes back or timeoutMs has passed. */
export function probeClient(host: string, port: number, token: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const attempt = (): void => {
      const s = connect({ host, port, localAddress: probeSource(host) });
      let got = '';
      let settled = false;
      const retry = (): void => {
        if (settled) return;
        settled = true;
        s.destroy();
        if (Date.now() > deadline) resolve(false);
        else setTimeout(attempt, 200);
      };
      s.setTimeout(1000);
      s.on('connect', () => s.write(token));
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes(token)) {
          settled = true;
          s.destroy();
          resolve(true);
        }
      });
      s.on('error', retry);
      s.on('timeout', retry);
      s.on('close', retry);
    };
    attempt();
  });
}

export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const { listenHost, target } = probeAddresses(o.family);
  const token = randomBytes(12).toString('hex');
  const servers: Server[] = [];
  const listening: number[] = [];
  for (const port of o.listenPorts) {
    const server = createServer((sock) => {
      sock.setTimeout(2000, () => sock.destroy());
      sock.on('data', (d) => {
        if (d.toString().includes(token)) sock.end(token);
      });
      sock.on('error', () => sock.destroy());
    });
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, listenHost, () => resolve(true));
    });
    if (ok) {
      servers.push(server);
      listening.push(port);
    }
  }
  try {
    if (listening.length === 0) return probeResult(o, listening, false);
    let ok: boolean;
    if (process.getuid?.() === o.uid && process.getgid?.() === o.gid) {
      ok = await probeClient(target, o.probePort, token, o.timeoutMs);
    } else {
      // The client must be the proxy's uid/gid: run this program again as them, client only.
      const { execa } = await import('execa');
      const [cmd = process.execPath, ...pre] = selfCommand();
      const r = await execa(cmd, [...pre, PROBE_CLIENT_COMMAND, target, String(o.probePort), token, String(o.timeoutMs)], {
        uid: o.uid,
        gid: o.gid,
        reject: false,
        timeout: o.timeoutMs + 3000,
      });
      ok = r.stdout === 'ok';
    }
    return probeResult(o, listening, ok);
  } finally {
    for (const s of servers) s.close();
  }
}
