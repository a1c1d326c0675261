import type { LogLevel } from './config/values.js';
import { host } from './platform/host.js';

const ORDER: Readonly<Record<LogLevel, number>> = { none: 0, fatal: 1, error: 2, warn: 3, info: 4, debug: 5 };

/**
 * What a log record carries besides its message, for JSON readers (--log_as_json writes them after
 * Istio's keys; the text layout writes the message only, which already says all of it). The keys
 * a record can carry are listed in docs/logs.md.
 */
export type LogFields = Readonly<Record<string, string | number | boolean | readonly string[] | Readonly<Record<string, string>>>>;

/** Receives log messages by level (Istio's levels); `console` fits. */
export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  /** Whether messages of this level are written (to skip building ones that are not). */
  enabled?(level: LogLevel): boolean;
}

/** Microseconds since the epoch: the runtime's wall clock in the entrypoint, performance's under Node. */
export function wallClockMicros(): number {
  return host !== undefined ? host.wallClock() : Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * Istio's log time (its zap encoder's own layout): UTC to the microsecond, 2006-01-02T15:04:05.000000Z.
 * Computed from the count of days (the entrypoint's runtime has no date object).
 */
export function logTime(micros: number = wallClockMicros()): string {
  const us = Math.floor(micros);
  const days = Math.floor(us / 86_400_000_000);
  const inDay = us - days * 86_400_000_000;
  // Days since 1970-01-01 to a civil date (proleptic Gregorian), by 400-year eras.
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const seconds = Math.floor(inDay / 1_000_000);
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(Math.floor(seconds / 3600), 2)}:${pad(Math.floor(seconds / 60) % 60, 2)}:${pad(seconds % 60, 2)}.${pad(inDay % 1_000_000, 6)}Z`;
}

/** Istio's keys, which a record's fields never replace. */
const RESERVED = new Set(['level', 'time', 'msg']);

/**
 * One log record. Text: `level\tmessage` (Istio's console layout without the time, so runs
 * compare); a message of several lines (a block: the configuration, a restore's input, the rules
 * after) follows on the lines after, as written, so it can be pasted as it is. JSON
 * (`--log_as_json`): one object per record, on one line, with Istio's keys in its encoder's order:
 * level, time, msg (Istio writes `scope` only for scopes other than "default", and all of
 * istio-iptables logs in the default scope), then the record's fields.
 */
export function formatLogLine(level: Exclude<LogLevel, 'none'>, msg: string, json: boolean, now?: () => number, fields?: LogFields): string {
  if (!json) return `${level}\t${msg}\n`;
  let extra = '';
  if (fields !== undefined) for (const [k, v] of Object.entries(fields)) if (!RESERVED.has(k)) extra += `,${JSON.stringify(k)}:${JSON.stringify(v)}`;
  return `{"level":"${level}","time":"${logTime(now?.())}","msg":${JSON.stringify(msg)}${extra}}\n`;
}

export interface LoggerOptions {
  /** Each line as one JSON object (`--log_as_json`). */
  readonly json?: boolean;
  /** The clock (microseconds since the epoch), for tests. */
  readonly now?: () => number;
}

/** A level-filtered logger writing one line per message, Istio-style (`level\tmessage`, or JSON). */
export function createLogger(level: LogLevel, write: (text: string) => void, options: LoggerOptions = {}): Logger {
  const json = options.json === true;
  const at = (l: Exclude<LogLevel, 'none'>) => (msg: string, fields?: LogFields) => {
    if (msg !== '' && ORDER[l] <= ORDER[level]) write(formatLogLine(l, msg, json, options.now, fields));
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), enabled: (l) => ORDER[l] <= ORDER[level] };
}
