/** `trace`: a flow walked offline through a plan. Pure: no I/O. */
export { traceFlow, finalChains } from './trace.js';
export { validateFlow, parseFlowWords, parseFlowLines } from './flow.js';
export { traceArgsReader, runTraceCommand, TRACE_USAGE } from './command.js';
export { TraceError, type Flow, type FlowState, type Hook, type TraceAction, type TraceOptions, type TraceResult, type TraceStep, type Verdict } from './types.js';
