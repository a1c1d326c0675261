import * as z from 'zod/mini';
import type { PodFacts } from './pod.js';

/*
 * What the plugin and the node agent say to each other over the agent's unix socket
 * (<run dir>/AGENT_SOCKET): one request line, one reply line, each a JSON object, ASCII only
 * (anything else escaped), so that either side reads it in any chunks. The plugin makes no API
 * call and needs no credentials: the agent knows the pods.
 */

/** The socket's name in the agent's run directory (the conflist's cni_agent_run_dir). */
export const AGENT_SOCKET = 'istio-cni-agent.sock';
export const PROTOCOL_VERSION = 1;
/** The longest reply the plugin reads; past it the reply is refused. */
export const MAX_REPLY_BYTES = 1 << 20;

export interface PodRequest {
  readonly v: typeof PROTOCOL_VERSION;
  readonly op: 'pod';
  readonly namespace: string;
  readonly name: string;
  /** K8S_POD_UID when the runtime gave it ('' otherwise): a cached pod with another uid is stale. */
  readonly uid: string;
}

export type AgentReply =
  | { readonly v: typeof PROTOCOL_VERSION; readonly pod: PodFacts }
  /** The API says there is no such pod (after the agent asked it directly). */
  | { readonly v: typeof PROTOCOL_VERSION; readonly missing: string }
  /** The agent could not learn about the pod (the API down or refusing, after bounded retries). */
  | { readonly v: typeof PROTOCOL_VERSION; readonly error: string };

const strings = z.record(z.string(), z.string());
const podFacts = z.strictObject({
  namespace: z.string(),
  name: z.string(),
  uid: z.string(),
  containers: z.array(z.string()),
  labels: strings,
  annotations: strings,
  proxy: z.nullable(z.strictObject({ env: strings, type: z.string(), runAsUser: z.nullable(z.int()), runAsGroup: z.nullable(z.int()) })),
  namespaceDataplaneMode: z.optional(z.string()),
});

const requestSchema = z.strictObject({ v: z.literal(PROTOCOL_VERSION), op: z.literal('pod'), namespace: z.string().check(z.minLength(1)), name: z.string().check(z.minLength(1)), uid: z.string() });
const replySchema = z.union([
  z.strictObject({ v: z.literal(PROTOCOL_VERSION), pod: podFacts }),
  z.strictObject({ v: z.literal(PROTOCOL_VERSION), missing: z.string() }),
  z.strictObject({ v: z.literal(PROTOCOL_VERSION), error: z.string() }),
]);

/** One line of JSON, every character outside printable ASCII escaped. */
export function encodeLine(value: unknown): string {
  return `${JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
}

function decode<T>(line: string, schema: z.ZodMiniType<T>, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`${what} is not JSON: ${JSON.stringify(line.slice(0, 200))}`);
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new Error(`${what} is not one the protocol (version ${PROTOCOL_VERSION}) allows, at ${r.error.issues[0]?.path.join('.') || 'its top'} (${r.error.issues[0]?.code ?? ''})`);
  return r.data;
}

export function parseRequest(line: string): PodRequest {
  return decode(line, requestSchema, 'the request');
}

export function parseReply(line: string): AgentReply {
  return decode(line, replySchema, "the node agent's reply") as AgentReply;
}
