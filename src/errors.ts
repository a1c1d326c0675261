/** Where a bad value came from: a command-line flag, an environment variable, a library option, a pod's annotation (istio-cni). */
export type ValueSource =
  | { readonly kind: 'flag'; readonly long: string; readonly short?: string }
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'option'; readonly name: string }
  | { readonly kind: 'annotation'; readonly name: string };

/** How a source is named in messages: `-b/--istio-inbound-ports`, `env ISTIO_INBOUND_PORTS`. */
export function describeSource(source: ValueSource): string {
  switch (source.kind) {
    case 'flag':
      return source.short === undefined ? `--${source.long}` : `-${source.short}/--${source.long}`;
    case 'env':
      return `environment variable ${source.name}`;
    case 'option':
      return `option ${source.name}`;
    case 'annotation':
      return `annotation ${source.name}`;
  }
}

/** Quote a user value for an error message so that control characters stay visible. */
export function quoteValue(value: string): string {
  return JSON.stringify(value);
}

/**
 * A value of the library's typed input as an error shows it: as JSON writes it (a list, a CIDR
 * object, a string quoted), but numbers as JavaScript prints them (NaN and Infinity, which JSON
 * would print as null). Nesting deeper than a CIDR in a list is cut short.
 */
export function valueText(value: unknown, depth = 0): string {
  if (typeof value === 'string') return quoteValue(value);
  if (Array.isArray(value) && depth < 4) return `[${value.map((v: unknown) => valueText(v, depth + 1)).join(',')}]`;
  if (typeof value === 'object' && value !== null && depth < 4) {
    return `{${Object.entries(value).map(([k, v]) => `${quoteValue(k)}:${valueText(v, depth + 1)}`).join(',')}}`;
  }
  return typeof value === 'bigint' ? `${value}n` : String(value);
}

/**
 * A configuration value was rejected: names the flag, env var or option, the value, and what was
 * expected.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'EINVALIDCONFIG';
  /**
   * @param value The value as given: a string as it is; a value of another type (a number, a list,
   *   an object, from configFromObject) as JSON text, with `typed` set, so that the message shows
   *   `70000` and `[80,70000]` as the caller wrote them rather than as quoted strings.
   */
  constructor(
    readonly source: ValueSource | undefined,
    readonly value: string | undefined,
    readonly expected: string,
    options?: { readonly typed?: boolean },
  ) {
    super(
      source === undefined
        ? expected
        : `invalid value ${options?.typed === true ? (value ?? '') : quoteValue(value ?? '')} for ${describeSource(source)}: expected ${expected}`,
    );
  }
}

/** A command that touches the host failed: keeps the command, its stderr and the cause. */
export class ApplyError extends Error {
  override readonly name = 'ApplyError';
  readonly code = 'EAPPLY';
  constructor(
    message: string,
    readonly command: readonly string[],
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
