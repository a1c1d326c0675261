import type { LogLevel } from './config/values.js';

const ORDER: Readonly<Record<LogLevel, number>> = { none: 0, fatal: 1, error: 2, warn: 3, info: 4, debug: 5 };

/** Receives log messages by level (Istio's levels); `console` fits. */
export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  /** Whether messages of this level are written (to skip building ones that are not). */
  enabled?(level: LogLevel): boolean;
}

/** A level-filtered logger writing one line per message, Istio-style (`level\tmessage`). */
export function createLogger(level: LogLevel, write: (text: string) => void): Logger {
  const at = (l: LogLevel) => (msg: string) => {
    if (msg !== '' && ORDER[l] <= ORDER[level]) write(`${l}\t${msg}\n`);
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), enabled: (l) => ORDER[l] <= ORDER[level] };
}
