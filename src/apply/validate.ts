import { connect, createServer, type Server } from 'node:net';
import { PROBE_CLIENT_COMMAND } from '../args.js';
import { randomBytes } from 'node:crypto';

/**
 * The validation probe, as Istio's: listen on loopback at the proxy's outbound and inbound ports,
 * then, as the proxy's uid, connect to 127.0.0.6 (::6) at the probe port, where nothing listens.
 * Only the capture rules can bring that connection to one of our listeners (the proxy uid's
 * traffic to a non-localhost address on lo is sent to the inbound port). The client sends a
 * random token and the listener echoes it back, proving the connection reached us.
 */
export interface ProbeOptions {
  readonly family: 'ipv4' | 'ipv6';
  readonly listenPorts: readonly number[];
  readonly probePort: number;
  readonly timeoutMs: number;
  /** uid/gid the client runs as (the proxy's), so its traffic is what the rules capture. */
  readonly uid: number;
  readonly gid: number;
}


/** How to run this program again: the compiled entrypoint alone, or Node with this script. */
export function selfCommand(): string[] {
  const script = process.argv[1];
  const compiled = script === undefined || script.startsWith('/$bunfs/') || script.startsWith('B:/~BUN/');
  return compiled ? [process.execPath] : [process.execPath, script];
}

/** Connect until the token comes back or the deadline passes. */
export function probeClient(host: string, port: number, token: string, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    const attempt = (): void => {
      const s = connect({ host, port });
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

export async function runProbe(o: ProbeOptions): Promise<{ ok: boolean; detail: string }> {
  const listenHost = o.family === 'ipv4' ? '127.0.0.1' : '::1';
  const target = o.family === 'ipv4' ? '127.0.0.6' : '::6';
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
    if (listening.length === 0) return { ok: false, detail: `could not listen on ${listenHost} ports ${o.listenPorts.join(', ')}` };
    const deadline = Date.now() + o.timeoutMs;
    let ok: boolean;
    if (process.getuid?.() === o.uid && process.getgid?.() === o.gid) {
      ok = await probeClient(target, o.probePort, token, deadline);
    } else {
      // The client must be the proxy's uid/gid: run this program again as them, client only.
      const { execa } = await import('execa');
      const [cmd = process.execPath, ...pre] = selfCommand();
      const r = await execa(cmd, [...pre, PROBE_CLIENT_COMMAND, target, String(o.probePort), token, String(deadline)], {
        uid: o.uid,
        gid: o.gid,
        reject: false,
        timeout: o.timeoutMs + 3000,
      });
      ok = r.stdout === 'ok';
    }
    return ok
      ? { ok: true, detail: `${target}:${o.probePort} reached our listener on ${listenHost} (${listening.join(', ')})` }
      : { ok: false, detail: `${target}:${o.probePort} did not reach ${listenHost} ports ${listening.join(', ')} within ${o.timeoutMs} ms` };
  } finally {
    for (const s of servers) s.close();
  }
}
