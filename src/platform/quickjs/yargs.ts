/**
 * yargs for the QuickJS entrypoint: yargs's own factory (the same code the Node CLI runs) given a
 * platform of the runtime's instead of Node's (yargs/lib/platform-shims/esm.mjs). Only our
 * definition of the command line runs on it (src/parser.ts: --help and errors), so the platform
 * holds what that needs: no files, no require, no environment (yargs would read the locale and
 * YARGS_DISABLE_WRAP from it; parser.ts fixes the locale, and here nothing is read).
 * scripts/bundle-quickjs.mjs maps `yargs` to this module, in the parser script only.
 */
// @ts-expect-error yargs's build has no type declarations; resolved by the bundler
import { YargsFactory } from 'yargs-factory';
// @ts-expect-error as above
import { getProcessArgvBin } from 'yargs-process-argv';
// @ts-expect-error as above: the English messages yargs's y18n reads under Node
import en from 'yargs-locale-en';
// @ts-expect-error cliui's layout engine without its Node bootstrap (no declarations)
import { cliui } from 'cliui/build/lib/index.js';
// @ts-expect-error yargs-parser without Node's path, fs and env (no declarations)
import Parser from 'yargs-parser/browser.js';
import stripAnsi from 'strip-ansi';
import wrap from 'wrap-ansi';
import stringWidth from './string-width.js';

type Messages = Record<string, string | { one: string; other: string }>;
const messages = en as Messages;

/** util.format's %s / %d / %% for the strings and numbers yargs passes; extra arguments appended. */
function format(text: string, args: unknown[]): string {
  let i = 0;
  const out = text.replace(/%[sdj%]/g, (m) => (m === '%%' ? '%' : i < args.length ? String(args[i++]) : m));
  return [out, ...args.slice(i).map(String)].join(' ');
}

const y18n = {
  __(text: string, ...args: unknown[]): string {
    const m = messages[text];
    return format(typeof m === 'string' ? m : text, args);
  },
  __n(singular: string, plural: string, count: number, ...args: unknown[]): string {
    const m = messages[singular];
    const text = typeof m === 'object' ? m[count === 1 ? 'one' : 'other'] : count === 1 ? singular : plural;
    return format(text, text.includes('%d') ? [count, ...args] : args);
  },
  setLocale(_locale: string): void {},
  getLocale: (): string => 'en',
  updateLocale(obj: Messages): void {
    Object.assign(messages, obj);
  },
};

const unsupported = (what: string) => (): never => {
  throw new Error(`${what} is not available in the entrypoint's yargs`);
};

const platform = {
  assert: {
    notStrictEqual(a: unknown, b: unknown): void {
      if (a === b) throw new Error(`assertion failed: ${String(a)} !== ${String(b)}`);
    },
    strictEqual(a: unknown, b: unknown): void {
      if (a !== b) throw new Error(`assertion failed: ${String(a)} === ${String(b)}`);
    },
  },
  cliui: (opts: unknown) => cliui(opts, { stringWidth, stripAnsi, wrap }),
  findUp: () => undefined,
  getEnv: (_name: string) => undefined,
  inspect: (v: unknown) => String(v),
  getProcessArgvBin,
  mainFilename: '/',
  Parser,
  path: {
    basename: (p: string) => p.slice(p.lastIndexOf('/') + 1),
    dirname: (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) || '/' : '.'),
    extname: (p: string) => {
      const base = p.slice(p.lastIndexOf('/') + 1);
      return base.lastIndexOf('.') > 0 ? base.slice(base.lastIndexOf('.')) : '';
    },
    relative: (_from: string, to: string) => to,
    resolve: (...parts: string[]) => parts[parts.length - 1] ?? '/',
    join: (...parts: string[]) => parts.join('/'),
  },
  process: {
    argv: () => process.argv,
    cwd: () => '/',
    emitWarning: () => {},
    execPath: () => process.execPath,
    exit: () => {},
    nextTick: (fn: () => void) => void Promise.resolve().then(fn),
    stdColumns: null,
  },
  readFileSync: unsupported('reading files'),
  readdirSync: unsupported('reading directories'),
  require: unsupported('require'),
  getCallerFile: unsupported('commandDir'),
  stringWidth,
  y18n,
};

const Yargs: (args: readonly string[]) => import('yargs').Argv = YargsFactory(platform);
export default Yargs;
