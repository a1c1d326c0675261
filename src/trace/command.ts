import type { OwnArgs } from '../args.js';
import { GO_FALSE, GO_TRUE } from '../config/gobool.js';
import type { OutputFormat } from '../config/values.js';
import type { Plan } from '../model/rule.js';
import { expectationText, parseExpectation, parseFlowLines, parseFlowWords, type FlowDefaults, type FlowInput } from './flow.js';
import { renderTraceMermaid, renderTraceSvg } from './picture.js';
import { traceFlow } from './trace.js';
import { TraceError, type Expectation, type Flow, type TraceResult } from './types.js';
import { describeFlow, landingLines, verdictLine, verdictWords } from './words.js';

export const TRACE_USAGE = `Usage: istio-iptables trace [flags] DIRECTION PROTOCOL SRC[:PORT] [->|to] DST:PORT [key=value...]
       istio-iptables trace [flags] --flows FILE|-

Walks a flow through the plan these flags build, as netfilter would, and prints each rule it
meets (hook, table, chain, position, action, the rule as written), the verdict (redirect or
tproxy with the proxy port, pass, or drop) with what decided it (the rule and the flag, variable
and value that made it), and where the connection lands. Offline: nothing on the host is read or
changed beyond what a dry run reads.

  DIRECTION  inbound | outbound          PROTOCOL  tcp | udp (any case)
  SRC, DST   10.0.0.1:80, [fd00::1]:80 (SRC's port is optional, default 40000); the arrow is
             optional (an unquoted -> is a shell redirection): SRC DST, SRC to DST
  uid=N gid=N groups=N,N   outbound: the sending process
  in=IFACE   inbound interface (default eth0)     out=IFACE  outbound interface (default lo
             for a local destination, else eth0)
  mark=N     the packet's mark (SO_MARK)          state=new|established|invalid (default new)
  --in IFACE, --out IFACE   the interface of flows that do not say (inbound, outbound)
  --local ADDR[,ADDR]       the pod's own addresses (local destinations; inbound REDIRECT target)
  --flows FILE|-            JSON lines in ({"direction","protocol","src","sport","dst","dport",
                            "uid","gid","groups","inInterface","outInterface","mark","state",
                            "expect"}; the same defaults), JSON lines out in the same order
                            ({"line","flow","verdict","toPort","reason","landing","hooks","path"},
                            or {"line","error"} for a bad line: the others still run, exit 1)
  --expect VERDICT          redirect, tproxy (each optionally :PORT), pass or drop: exit 1 when a
                            flow gets another verdict (with --flows, a line's "expect" wins)
  --verbose                 also list the rules met that did not match, and the match that failed
  --output json             the single flow's result as one JSON line
  --output svg | mermaid    the packet's path as a picture (hooks, tables, chains, the deciding
                            rule, the verdict, where it lands)

Examples:
  istio-iptables trace -b '*' -m TPROXY inbound tcp 10.0.0.1:40000 10.0.0.2:8080 --in eth0
  istio-iptables trace -i '*' -u 1337 outbound TCP 10.0.0.2 to 93.184.216.34:443 uid=1000 gid=1000
  istio-iptables trace -i '*' -x 10.96.0.0/12 --expect pass outbound tcp 10.0.0.2 10.96.0.10:443
`;

export interface TraceArgs {
  /** The human flow's words. */
  readonly words: readonly string[];
  readonly flowsFile?: string;
  readonly inInterface?: string;
  readonly outInterface?: string;
  readonly localAddresses: readonly string[];
  readonly expect?: string;
  readonly verbose: boolean;
}

const TRACE_FLAGS = ['--flows', '--in', '--out', '--local', '--expect'] as const;
const TRACE_SWITCHES = ['--verbose'] as const;
type TraceFlag = (typeof TRACE_FLAGS)[number] | (typeof TRACE_SWITCHES)[number];

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
    switches: TRACE_SWITCHES,
    flag: (name, value) => {
      if (value === undefined) throw new TraceError(`flag needs an argument: ${name}`);
      given[name as TraceFlag] = value;
    },
    word: (arg) => void words.push(arg),
  };
  const args = (): TraceArgs => {
    const local = given['--local'];
    const verbose = given['--verbose'] ?? 'false';
    if (!GO_TRUE.has(verbose) && !GO_FALSE.has(verbose)) throw new TraceError(`invalid value ${JSON.stringify(verbose)} for --verbose: expected true or false`);
    return {
      words,
      ...(given['--flows'] === undefined ? {} : { flowsFile: given['--flows'] }),
      ...(given['--in'] === undefined ? {} : { inInterface: given['--in'] }),
      ...(given['--out'] === undefined ? {} : { outInterface: given['--out'] }),
      ...(given['--expect'] === undefined ? {} : { expect: given['--expect'] }),
      localAddresses: local === undefined ? [] : local.split(',').map((s) => s.trim()).filter((s) => s !== ''),
      verbose: GO_TRUE.has(verbose),
    };
  };
  return { own, args };
}

/** A result as JSON: the flow it answers, then the verdict, what decided it, where it lands, the path. */
function resultJson(flow: Flow, r: TraceResult): Record<string, unknown> {
  return { flow, verdict: r.verdict, toPort: r.toPort, reason: r.reason, landing: r.landing, hooks: r.hooks, path: r.path };
}

/** The readable form: the flow, one line per rule met, the verdict with what decided it, where it lands. */
function formatTrace(flow: Flow, result: TraceResult): string {
  const lines = [`flow: ${describeFlow(flow)}`];
  if (result.path.length === 0) lines.push('  (no rule matched)');
  const cols = result.path.map((s) => [s.hook, s.table, s.chain, `#${s.position}`, s.action, s.failed === undefined ? s.rule : `${s.rule}  (fails ${s.failed})`]);
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
  lines.push(verdictLine(flow, result), ...landingLines(flow, result));
  return `${lines.join('\n')}\n`;
}

/** The mismatch between a result and its expectation, or undefined when it meets it. */
function unmet(e: Expectation | undefined, r: TraceResult): string | undefined {
  if (e === undefined) return undefined;
  if (e.verdict === r.verdict && (e.toPort === undefined || e.toPort === r.toPort)) return undefined;
  return `expected ${expectationText(e)}, got ${verdictWords(r)}`;
}

function traceOne(plan: Plan, input: FlowInput, args: TraceArgs): TraceResult {
  return traceFlow(plan, input.flow, {
    localAddresses: args.localAddresses,
    verbose: args.verbose,
    ...(input.groups === undefined ? {} : { groups: input.groups }),
  });
}

/** What trace prints, and the errors it reports (each a line on stderr; any of them: exit 1). */
export interface TraceOutput {
  readonly stdout: string;
  readonly errors: readonly string[];
}

/**
 * Run the trace subcommand on a built plan. `flowsText` is the --flows input when given. A bad
 * flow on the command line throws TraceError naming the problem (nothing printed); with --flows a
 * bad line is reported by number and the others still run. A flow whose verdict is not the one
 * expected is printed, and reported.
 */
export function runTraceCommand(plan: Plan, args: TraceArgs, flowsText: string | undefined, output: OutputFormat): TraceOutput {
  const expect = args.expect === undefined ? undefined : parseExpectation(args.expect, '--expect');
  const defaults: FlowDefaults = {
    ...(args.inInterface === undefined ? {} : { inInterface: args.inInterface }),
    ...(args.outInterface === undefined ? {} : { outInterface: args.outInterface }),
    ...(expect === undefined ? {} : { expect }),
  };
  if (args.flowsFile !== undefined) {
    if (args.words.length > 0) throw new TraceError(`give either a flow or --flows, not both (got ${JSON.stringify(args.words.join(' '))})`);
    if (output === 'svg' || output === 'mermaid') throw new TraceError(`--output ${output} draws one flow: give it on the command line, not with --flows`);
    const errors: string[] = [];
    const out = parseFlowLines(flowsText ?? '', defaults).map((entry) => {
      const fail = (message: string): string => {
        errors.push(`--flows line ${entry.line}: ${message}`);
        return `${JSON.stringify({ line: entry.line, error: message })}\n`;
      };
      if ('error' in entry) return fail(entry.error);
      let result: TraceResult;
      try {
        result = traceOne(plan, entry.input, args);
      } catch (e) {
        if (!(e instanceof TraceError)) throw e;
        return fail(e.message);
      }
      const mismatch = unmet(entry.input.expect, result);
      if (mismatch !== undefined) errors.push(`--flows line ${entry.line}: ${mismatch}`);
      return `${JSON.stringify({ line: entry.line, ...resultJson(entry.input.flow, result) })}\n`;
    });
    return { stdout: out.join(''), errors };
  }
  if (args.words.length === 0) throw new TraceError('trace needs a flow (DIRECTION PROTOCOL SRC[:PORT] [->] DST:PORT) or --flows FILE (see trace --help)');
  const input = parseFlowWords(args.words, defaults);
  const result = traceOne(plan, input, args);
  const mismatch = unmet(input.expect, result);
  const errors = mismatch === undefined ? [] : [mismatch];
  switch (output) {
    case 'json':
      return { stdout: `${JSON.stringify(resultJson(input.flow, result))}\n`, errors };
    case 'svg':
      return { stdout: renderTraceSvg(input.flow, result), errors };
    case 'mermaid':
      return { stdout: renderTraceMermaid(input.flow, result), errors };
    case 'text':
      return { stdout: formatTrace(input.flow, result), errors };
  }
}
