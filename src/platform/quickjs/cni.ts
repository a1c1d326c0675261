/**
 * The istio-cni plugin's effects on the runtime (dist/cni/istio-cni): its question to the node
 * agent over the agent's unix socket, and the facts it reads about namespaces. Every wait is
 * bounded, and anything unexpected is a failure (the plugin then fails the ADD: no rules, no pod).
 */
import type { HostFacts } from '../../config/host.js';
import { ipv6FromAddresses, usableAddress, type InterfaceAddress } from '../../config/host.js';
import { AGENT_SOCKET, encodeLine, MAX_REPLY_BYTES, parseReply, type AgentReply, type PodRequest } from '../../cni/protocol.js';
import type { Host } from '../host.js';

/** How long the agent has to answer (it retries the API for a pod it does not know yet). */
export const AGENT_TIMEOUT_MS = 30_000;
/** How long the plugin retries connecting while the agent's socket is missing or refuses (a restart). */
export const CONNECT_RETRY_MS = 2_000;

const waitFor = (h: Host, fd: number, what: 'r' | 'w', ms: number): Promise<boolean> => new Promise((resolve) => h.wait(fd, what, Math.max(0, ms), resolve));

/** Connect, retrying while the socket is missing or refuses, until CONNECT_RETRY_MS have passed. */
async function connect(h: Host, path: string): Promise<number> {
  const until = h.now() + CONNECT_RETRY_MS;
  for (;;) {
    try {
      return h.unixConnect!(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const transient = code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EAGAIN';
      if (!transient || h.now() >= until) throw err;
      await waitFor(h, -1, 'r', 100);
    }
  }
}

/** One request, one reply line, within `timeoutMs`. */
export async function askAgent(h: Host, runDir: string, request: PodRequest, timeoutMs = AGENT_TIMEOUT_MS): Promise<AgentReply> {
  if (h.unixConnect === undefined) throw new Error('this runtime has no unix sockets (not the istio-cni build)');
  const deadline = h.now() + timeoutMs;
  const fd = await connect(h, `${runDir.replace(/\/+$/, '')}/${AGENT_SOCKET}`);
  try {
    let out = encodeLine(request);
    while (out.length > 0) {
      const n = h.send(fd, out);
      if (n > 0) out = out.slice(n);
      else if (!(await waitFor(h, fd, 'w', deadline - h.now()))) throw new Error(`the agent took no request within ${timeoutMs} ms`);
    }
    let reply = '';
    for (;;) {
      const chunk = h.recv(fd);
      if (chunk === null) {
        if (!(await waitFor(h, fd, 'r', deadline - h.now()))) throw new Error(`no answer from the agent within ${timeoutMs} ms`);
        continue;
      }
      if (chunk === '') throw new Error(reply === '' ? 'the agent closed the connection without answering' : 'the agent closed the connection in the middle of its answer');
      reply += chunk;
      const end = reply.indexOf('\n');
      if (end >= 0) return parseReply(reply.slice(0, end));
      if (reply.length > MAX_REPLY_BYTES) throw new Error(`the agent's answer is longer than ${MAX_REPLY_BYTES} bytes`);
    }
  } finally {
    h.close(fd);
  }
}

/** Whether `path` names the network namespace this process runs in. */
export function isOwnNamespace(h: Host, path: string): boolean {
  return h.fileId!(path) === h.fileId!('/proc/self/ns/net');
}

/**
 * The facts Istio reads inside the pod's namespace, read there over rtnetlink: its addresses,
 * IPv4 before IPv6 as the kernel lists them to Istio, decide IPv6 by Istio's rule; a namespace
 * with no usable address is an error, as in Istio's plugin. Only IPv6 is asked of a pod: its
 * proxy uid comes from the pod, and DNS capture takes all of port 53 (no resolv.conf).
 */
export function targetFacts(h: Host, netns: string): HostFacts {
  return {
    proxyUid: () => 1337,
    dnsServers: () => ({ ipv4: [], ipv6: [] }),
    ipv6Enabled(dualStack) {
      const addresses: InterfaceAddress[] = [];
      // Read through the namespace's descriptor, opened and checked as the one door opens it.
      const { fd } = h.openNamespace(netns);
      try {
        for (const family of [4, 6] as const) {
          const dump = h.netlinkDump(fd, 2, family);
          for (const a of dump.items) addresses.push({ address: a.address, family: family === 4 ? 'IPv4' : 'IPv6' });
        }
      } finally {
        h.close(fd);
      }
      if (!addresses.some(({ address }) => usableAddress(address) !== null)) throw new Error(`no valid local IP address found in the pod's network namespace ${netns}`);
      return ipv6FromAddresses(addresses, dualStack);
    },
  };
}
