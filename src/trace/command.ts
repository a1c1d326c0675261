import type { OwnArgs } from '../args.js';
import type { Plan } from '../model/rule.js';
import { parseFlowLines, parseFlowWords, type FlowInput } from './flow.js';
import { traceFlow } from './trace.js';
import { TraceError, type Flow, type TraceResult } from './types.js';

export const TRACE_USAGE = `Usage: istio-iptables trace [flags] DIRECTION PROTOCOL SRC[:PORT] -> DST:PORT [key=value...]
       istio-iptables trace [flags] --flows FILE|-

Walks a flow through the plan these flags build, as netfilter would, and prints each rule it
meets (hook, table, chain, position, action, the rule as written) and the verdict: redirect or
tproxy (with the proxy port), pass, or drop. Offline: nothing on the host is read or changed
beyond what a dry run reads.

  DIRECTION  inbound | outbound          PROTOCOL  tcp | udp
  SRC, DST   10.0.0.1:80, [fd00::1]:80 (SRC's port is optional, default 40000)
  uid=N gid=N groups=N,N   outbound: the sending process
  in=IFACE   inbound interface (default eth0)     out=IFACE  outbound interface (default lo
             for a local destination, else eth0)
  mark=N     the packet's mark (SO_MARK)          state=new|established|invalid (default new)
  --in IFACE, --out IFACE   same as in=, out=
  --local ADDR[,ADDR]       the pod's own addresses (local destinations; inbound REDIRECT target)
  --flows FILE|-            JSON lines in ({"direction","protocol","src","sport","dst","dport",
                            "uid","gid","groups","inInterface","outInterface","mark","state"}),
                            JSON lines out in the same order ({"verdict","toPort","path"})
  --output json             print the single flow's result as one JSON line

Examples:
  istio-iptables trace -b '*' -m TPROXY inbound tcp 10.0.0.1:40000 '->' 10.0.0.2:8080 --in eth0
  istio-iptables trace -i '*' -u 1337 outbound tcp 10.0.0.2 '->' 93.184.216.34:443 uid=1000 gid=1000
`;

export interface TraceArgs {
  /** The human flow's words. */
  readonly words: readonly string[];
  readonly flowsFile?: string;
  readonly inInterface?: string;
  readonly outInterface?: string;
  readonly localAddresses: readonly string[];
}

const TRACE_FLAGS = ['--flows', '--in', '--out', '--local'] as const;
type TraceFlag = (typeof TRACE_FLAGS)[number];

/**
 * Trace's own flags and the flow's words, taken out of trace's arguments by the one walk that
 * reads the configuration flags (args.ts rawFromArgs, given `own`). A configuration flag that
 * takes a value takes the next argument whatever it looks like, as the main parser does; anything
 * else starting with "-" (but "->") goes to the configuration parser, which reports it. `args()`
 * answers once the walk is done.
 */
export function traceArgsReader(): { readonly own: OwnArgs; readonly args: () => TraceArgs } {
  const words: string[] = [];
  const given: Partial<Record<TraceFlag, string>> = {};
  const own: OwnArgs = {
    names: TRACE_FLAGS,
    flag: (name, value) => {
      if (value === undefined) throw new TraceError(`flag needs an argument: ${name}`);
      given[name as TraceFlag] = value;
    },
    word: (arg) => void words.push(arg),
  };
  const args = (): TraceArgs => {
    const local = given['--local'];
    return {
      words,
      ...(given['--flows'] === undefined ? {} : { flowsFile: given['--flows'] }),
      ...(given['--in'] === undefined ? {} : { inInterface: given['--in'] }),
      ...(given['--out'] === undefined ? {} : { outInterface: given['--out'] }),
      localAddresses: local === undefined ? [] : local.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    };
  };
  return { own, args };
}

/** The result as one JSON line: {"verdict","toPort","path"}. */
function traceJsonLine(result: TraceResult): string {
  return `${JSON.stringify({ verdict: result.verdict, toPort: result.toPort, path: result.path })}\n`;
}

function describeFlow(f: Flow): string {
  const host = (a: string, port: number): string => (a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);
  const extra: string[] = [];
  if (f.uid !== undefined) extra.push(`uid=${f.uid}`);
  if (f.gid !== undefined) extra.push(`gid=${f.gid}`);
  if (f.mark !== undefined) extra.push(`mark=${f.mark}`);
  if (f.inInterface !== undefined) extra.push(`in=${f.inInterface}`);
  if (f.outInterface !== undefined) extra.push(`out=${f.outInterface}`);
  extra.push(`state=${(f.state ?? 'NEW').toLowerCase()}`);
  return [f.direction, f.protocol, host(f.src, f.sport), '->', host(f.dst, f.dport), ...extra].join(' ');
}

/** The readable form: the flow, one line per rule met, the verdict. */
function formatTrace(flow: Flow, result: TraceResult, familyDisabled: boolean): string {
  const lines = [`flow: ${describeFlow(flow)}`];
  if (familyDisabled) lines.push('  (IPv6 is disabled in this plan: no rule applies)');
  else if (result.path.length === 0) lines.push('  (no rule matched)');
  const cols = result.path.map((s) => [s.hook, s.table, s.chain, `#${s.position}`, s.action, s.rule]);
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(0, ...cols.map((c) => (c[i] ?? '').length)));
  let sent = false;
  for (const [i, c] of cols.entries()) {
    const hook = result.path[i]?.hook;
    if (hook === 'OUTPUT' || hook === 'POSTROUTING') sent = true;
    else if (sent) {
      lines.push('  (back in through lo)');
      sent = false;
    }
    lines.push(`  ${c.map((v, j) => (j < 5 ? v.padEnd(widths[j] ?? 0) : v)).join('  ')}`);
  }
  const established = flow.state === 'ESTABLISHED' ? " (as the connection's first packet decided)" : '';
  switch (result.verdict) {
    case 'redirect':
      lines.push(`verdict: redirect to port ${result.toPort} (NAT; the original destination is kept in conntrack)${established}`);
      break;
    case 'tproxy':
      lines.push(`verdict: tproxy to port ${result.toPort} (the transparent listener; destination unchanged)${established}`);
      break;
    case 'drop':
      lines.push('verdict: drop');
      break;
    case 'pass':
      lines.push(`verdict: pass (not captured)${established}`);
      break;
  }
  return `${lines.join('\n')}\n`;
}

function traceOne(plan: Plan, input: FlowInput, local: readonly string[]): TraceResult {
  return traceFlow(plan, input.flow, {
    localAddresses: local,
    ...(input.groups === undefined ? {} : { groups: input.groups }),
  });
}

/**
 * Run the trace subcommand on a built plan. `flowsText` is the --flows input when given. Returns
 * what to print; throws TraceError naming the problem (nothing is printed then).
 */
export function runTraceCommand(plan: Plan, args: TraceArgs, flowsText: string | undefined, output: 'text' | 'json'): string {
  if (args.flowsFile !== undefined) {
    if (args.words.length > 0) throw new TraceError(`give either a flow or --flows, not both (got ${JSON.stringify(args.words.join(' '))})`);
    if (args.inInterface !== undefined || args.outInterface !== undefined) throw new TraceError('--in/--out go with a flow on the command line; in --flows use inInterface/outInterface');
    const inputs = parseFlowLines(flowsText ?? '');
    return inputs.map((input, i) => {
      try {
        return traceJsonLine(traceOne(plan, input, args.localAddresses));
      } catch (e) {
        throw new TraceError(`--flows flow ${i + 1}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }).join('');
  }
  if (args.words.length === 0) throw new TraceError('trace needs a flow (DIRECTION PROTOCOL SRC[:PORT] -> DST:PORT) or --flows FILE (see trace --help)');
  const input = parseFlowWords(args.words, {
    ...(args.inInterface === undefined ? {} : { inInterface: args.inInterface }),
    ...(args.outInterface === undefined ? {} : { outInterface: args.outInterface }),
  });
  const result = traceOne(plan, input, args.localAddresses);
  if (output === 'json') return traceJsonLine(result);
  return formatTrace(input.flow, result, input.flow.src.includes(':') && plan.ipv6 === null);
}
