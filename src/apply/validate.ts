import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

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

const CLIENT = `
const net = require('node:net');
const [host, port, token, deadline] = process.argv.slice(1);
const attempt = () => {
  const s = net.connect({ host, port: Number(port) });
  let got = '';
  s.setTimeout(1000);
  s.on('connect', () => s.write(token));
  s.on('data', (d) => { got += d; if (got.includes(token)) { process.stdout.write('ok'); process.exit(0); } });
  const retry = () => { s.destroy(); if (Date.now() > Number(deadline)) process.exit(1); setTimeout(attempt, 200); };
  s.on('error', retry);
  s.on('timeout', retry);
};
attempt();
`;

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
    const r = await execa(process.execPath, ['-e', CLIENT, target, String(o.probePort), token, String(Date.now() + o.timeoutMs)], {
      uid: o.uid,
      gid: o.gid,
      reject: false,
      timeout: o.timeoutMs + 3000,
    });
    return r.stdout === 'ok'
      ? { ok: true, detail: `${target}:${o.probePort} reached our listener on ${listenHost} (${listening.join(', ')})` }
      : { ok: false, detail: `${target}:${o.probePort} did not reach ${listenHost} ports ${listening.join(', ')} within ${o.timeoutMs} ms` };
  } finally {
    for (const s of servers) s.close();
  }
}
