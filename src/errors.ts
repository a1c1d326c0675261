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

/** A configuration value was rejected: names the flag or env var, the value, and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'EINVALIDCONFIG';
  constructor(
    readonly source: ValueSource | undefined,
    readonly value: string | undefined,
    readonly expected: string,
  ) {
    super(
      source === undefined
        ? expected
        : `invalid value ${quoteValue(value ?? '')} for ${describeSource(source)}: expected ${expected}`,
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
