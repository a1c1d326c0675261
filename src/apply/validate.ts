import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { ProbeJudge, probeAddresses, probeSource, socketTable, type ProbeOptions, type ProbeResult } from './probe.js';

/**
 * The validation probe on Node (apply/probe.ts says what it does and who decides; the
 * entrypoint's is platform/quickjs/validate.ts, on the runtime's sockets).
 */
export type { ProbeOptions } from './probe.js';

/** How to run this program again: Node with this script (as root: the probe in another namespace). */
export function selfCommand(): string[] {
  const script = process.argv[1];
  return script === undefined ? [process.execPath] : [process.execPath, script];
}

/**
 * The client, run as the proxy's uid/gid by Node with only this code (-e): no file of this
 * package, an empty environment (nothing like NODE_OPTIONS changes what it runs), / as its
 * directory, and the node binary itself executed through a descriptor opened here (fd 3), so it
 * starts wherever this package and Node are installed (under /root, a 0700 directory). It reads
 * the token from stdin, connects until stdin ends (or its own bound passes), and reports each
 * attempt on stdout, "connected <local port>" or "failed <code>"; it decides nothing.
 */
const CLIENT = `
const net = require('node:net');
const [target, port, source, limit] = process.argv.slice(1);
const until = Date.now() + Number(limit);
let token;
let input = '';
const attempt = () => {
  if (Date.now() > until) process.exit(0);
  const s = net.connect({ host: target, port: Number(port), localAddress: source });
  let over = false;
  const next = () => {
    if (over) return;
    over = true;
    s.destroy();
    setTimeout(attempt, 200);
  };
  s.setTimeout(1000, next);
  s.on('connect', () => {
    process.stdout.write('connected ' + s.localPort + '\\n');
    s.end(token);
  });
  // Our listeners never answer: anything heard comes from something else.
  s.on('data', next);
  s.on('error', (e) => {
    process.stdout.write('failed ' + (e.code || 'error') + '\\n');
    next();
  });
  s.on('close', next);
};
process.stdin.on('data', (d) => {
  input += d;
  const nl = input.indexOf('\\n');
  if (token === undefined && nl >= 0) {
    token = input.slice(0, nl);
    attempt();
  }
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
`;

/** The kernel's socket table as it is now (read before the connection is closed), or why it could not be read. */
function kernelTable(family: ProbeOptions['family']): string | Error {
  try {
    return readFileSync(socketTable(family), 'latin1');
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** Our listeners: each connection's data read until it holds the token, then the connection closed. */
async function listen(o: ProbeOptions, judge: ProbeJudge): Promise<{ servers: Server[]; listening: number[] }> {
  const { listenHost } = probeAddresses(o.family);
  const servers: Server[] = [];
  const listening: number[] = [];
  for (const port of o.listenPorts) {
    const server = createServer((sock) => {
      let got = '';
      sock.setTimeout(2000, () => sock.destroy());
      sock.on('data', (d) => {
        got += d.toString('latin1');
        if (got.includes(judge.token)) {
          judge.tokenReceived(sock.remoteAddress ?? '', sock.remotePort ?? 0, port, kernelTable(o.family));
          sock.destroy();
        } else if (got.length > 4096) {
          sock.destroy();
        }
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
  return { servers, listening };
}

export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const { target } = probeAddresses(o.family);
  const judge = new ProbeJudge(o, randomBytes(16).toString('hex'));
  const { servers, listening } = await listen(o, judge);
  try {
    if (listening.length === 0) return judge.result(listening);
    const clientError = await withClient(o, target, judge);
    return judge.result(listening, clientError);
  } finally {
    for (const s of servers) s.close();
  }
}

/**
 * Run the client until the judge has its proof or timeoutMs has passed; resolves to why the
 * client failed when it could not start or ended before that (its own words), else undefined.
 */
async function withClient(o: ProbeOptions, target: string, judge: ProbeJudge): Promise<string | undefined> {
  // child_process itself, not execa: the binary goes to the child as an open descriptor (stdio
  // entry 3), which execa's options do not take, and the client's lines are read as they come.
  const { spawn } = await import('node:child_process');
  let node: number;
  try {
    node = openSync(process.execPath, 'r');
  } catch (err) {
    return `cannot open ${process.execPath}: ${err instanceof Error ? err.message : String(err)}`;
  }
  // The ids only when they are not ours already (the validation container runs as the proxy).
  const same = process.getuid?.() === o.uid && process.getgid?.() === o.gid;
  const child = spawn('/proc/self/fd/3', ['-e', CLIENT, target, String(o.probePort), probeSource(target), String(o.timeoutMs + 1000)], {
    stdio: ['pipe', 'pipe', 'pipe', node],
    env: {},
    cwd: '/',
    ...(same ? {} : { uid: o.uid, gid: o.gid }),
  });
  closeSync(node);
  let verdict!: (clientError: string | undefined) => void;
  const done = new Promise<string | undefined>((resolve) => (verdict = resolve));
  const timer = setTimeout(() => verdict(undefined), o.timeoutMs);
  judge.onPassed = () => verdict(undefined);
  let lines = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    lines += d.toString();
    for (let nl = lines.indexOf('\n'); nl >= 0; nl = lines.indexOf('\n')) {
      const [what, value = ''] = lines.slice(0, nl).split(' ');
      lines = lines.slice(nl + 1);
      if (what === 'connected') judge.clientConnected(Number(value));
      else if (what === 'failed') judge.clientFailed(value);
    }
  });
  child.stderr?.on('data', (d: Buffer) => void (stderr.length < 4096 && (stderr += d.toString())));
  child.stdin?.on('error', () => {});
  child.stdin?.write(`${judge.token}\n`);
  // Ended before the verdict: it could not start (the kernel refused the ids or the binary), or
  // it failed; its own words say why.
  const ended = new Promise<void>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      verdict(`could not start ${process.execPath} as the client: ${err.code ?? err.message}`);
      resolve();
    });
    child.once('close', (code, signal) => {
      const how = code !== null ? `exit ${code}` : `signal ${signal ?? '?'}`;
      const said = stderr.trim().split('\n').slice(0, 3).join(' | ');
      verdict(`${process.execPath} as the client ended (${how})${said === '' ? '' : `: ${said}`}`);
      resolve();
    });
  });
  const clientError = await done;
  clearTimeout(timer);
  // Done: its stdin ends, and it exits; killed if it does not.
  child.stdin?.end();
  const kill = setTimeout(() => child.kill('SIGKILL'), 1000);
  await ended;
  clearTimeout(kill);
  return judge.passed ? undefined : clientError;
}
