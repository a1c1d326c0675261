/** `trace`: a flow walked offline through a plan. Pure: no I/O. */
export { traceFlow, finalChains, inCidr } from './trace.js';
export { validateFlow, parseFlowWords, parseFlowLines, DEFAULT_SPORT, type FlowInput } from './flow.js';
export { splitTraceArgs, runTraceCommand, formatTrace, traceJsonLine, TRACE_COMMAND, TRACE_USAGE, type TraceArgs } from './command.js';
export { TraceError, type Flow, type FlowState, type Hook, type TraceAction, type TraceOptions, type TraceResult, type TraceStep, type Verdict } from './types.js';
