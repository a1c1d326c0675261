/**
 * Stands in for modules the QuickJS entrypoint never runs (the validation probe, trace and its
 * file reading): those paths are handed to the full CLI before they start.
 * Reaching one of these is a bug in that routing, reported as such.
 */
function unavailable(): never {
  throw new Error('internal: this code path is not part of the QuickJS entrypoint');
}
export const readFile = unavailable;
export const selfCommand = unavailable;
export const probeClient = unavailable;
export const runProbe = unavailable;
export const runTraceCommand = unavailable;
export const splitTraceArgs = unavailable;
export const TRACE_USAGE = '';
