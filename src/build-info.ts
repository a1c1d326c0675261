/**
 * What --version says about this build, recorded when it is built (scripts/build-info.mjs): `npm
 * run build` writes dist/build-info.js with it, and the entrypoint's bundler
 * (scripts/bundle-quickjs.mjs) puts it in place of this module, with the engine compiled in. Run
 * from source (the tests), it is undefined.
 */
export interface BuildInfo {
  /** The package's version (package.json). */
  readonly version: string;
  /** The source it was built from: the git commit and its date, or why that is unknown. */
  readonly build: string;
  /** The JavaScript engine compiled into the program (the entrypoint's QuickJS); absent: Node's. */
  readonly engine?: string;
}

export const BUILD_INFO: BuildInfo | undefined = undefined;
