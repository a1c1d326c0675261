/** `trace`: a flow walked offline through a plan. Pure: no I/O. */
export { traceFlow, finalChains } from './trace.js';
export { validateFlow, parseFlowWords, parseFlowLines, parseExpectation, DEFAULT_SPORT, type FlowDefaults, type FlowInput, type FlowLine } from './flow.js';
export { traceArgsReader, runTraceCommand, TRACE_USAGE, type TraceArgs, type TraceOutput } from './command.js';
export { renderTraceSvg, renderTraceMermaid, traceDiagram } from './picture.js';
export {
  TraceError,
  type Endpoint,
  type Expectation,
  type Flow,
  type FlowState,
  type Hook,
  type TraceAction,
  type TraceLanding,
  type TraceOptions,
  type TraceReason,
  type TraceResult,
  type TraceStep,
  type Verdict,
} from './types.js';
