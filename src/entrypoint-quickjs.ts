/**
 * The init container's entrypoint on the QuickJS runtime (native/host.c; `npm run
 * build:entrypoint` -> dist/entrypoint/istio-iptables). The same CLI as bin/istio-iptables.js,
 * all of it: what only some runs need (--help and errors through yargs, trace, the careful path,
 * the validation probe) is read from the scripts the runtime embeds when first imported.
 */
import './platform/quickjs/process.js';
import { main } from './cli.js';
import { host } from './platform/host.js';
import { shared } from './platform/quickjs/shared.js';

const h = host!;
// The prelude read these same arguments and environment (when they were all flags).
const read = shared()?.rawInput;

void main(h.argv, {
  ...(read !== undefined ? { rawInput: read } : {}),
  // trace --flows -: standard input, read whole.
  stdin: async () => h.readFile('/dev/stdin'),
}).then((code) => {
  process.exitCode = code;
});
