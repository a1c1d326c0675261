import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { AGENT_SOCKET, encodeLine, parseRequest, PROTOCOL_VERSION, type AgentReply, type PodRequest } from '../cni/protocol.js';

/*
 * The agent's unix socket in its run directory, where the plugin asks about pods: one request
 * line, one reply line, then the connection ends. Only root can connect (the socket is 0600 in a
 * 0700 directory); a request that is too long, not in the protocol, or too slow is answered with
 * an error and dropped.
 */

const MAX_REQUEST_BYTES = 4096;
const REQUEST_TIMEOUT_MS = 5_000;

export interface AgentServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Listen at <runDir>/AGENT_SOCKET, answering each request with `answer`. */
export async function serveAgent(runDir: string, answer: (r: PodRequest) => Promise<AgentReply>, log: (msg: string) => void): Promise<AgentServer> {
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const path = join(runDir, AGENT_SOCKET);
  // A socket left by an agent that died is removed; anything else at that path is not ours to remove.
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    unlinkSync(path);
  }
  const server: Server = createServer((socket) => handle(socket, answer, log));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      }),
  };
}

function handle(socket: Socket, answer: (r: PodRequest) => Promise<AgentReply>, log: (msg: string) => void): void {
  let input = '';
  let done = false;
  const reply = (r: AgentReply) => {
    if (done) return;
    done = true;
    socket.end(encodeLine(r));
  };
  socket.setEncoding('utf8');
  socket.setTimeout(REQUEST_TIMEOUT_MS, () => {
    if (input.indexOf('\n') < 0) reply({ v: PROTOCOL_VERSION, error: `no complete request within ${REQUEST_TIMEOUT_MS} ms` });
  });
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: string) => {
    if (done || input.indexOf('\n') >= 0) return;
    input += chunk;
    const end = input.indexOf('\n');
    if (end < 0) {
      if (input.length > MAX_REQUEST_BYTES) reply({ v: PROTOCOL_VERSION, error: `request longer than ${MAX_REQUEST_BYTES} bytes` });
      return;
    }
    socket.setTimeout(0);
    let request: PodRequest;
    try {
      request = parseRequest(input.slice(0, end));
    } catch (err) {
      reply({ v: PROTOCOL_VERSION, error: err instanceof Error ? err.message : String(err) });
      return;
    }
    answer(request).then(
      (r) => {
        const what = 'pod' in r ? 'known' : 'missing' in r ? 'missing' : `error: ${r.error}`;
        log(`pod ${request.namespace}/${request.name}: ${what}`);
        reply(r);
      },
      (err: unknown) => reply({ v: PROTOCOL_VERSION, error: err instanceof Error ? err.message : String(err) }),
    );
  });
}
