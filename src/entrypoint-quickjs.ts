/**
 * The init container's entrypoint on the QuickJS runtime (native/host.c; `npm run
 * build:entrypoint` -> dist/entrypoint/istio-iptables). Same CLI as bin/istio-iptables.js: dry
 * runs, errors, applying, reconciling, cleaning up and diff run here; --help, unknown arguments,
 * --run-validation and trace are handed to the full CLI next to it (platform/quickjs/handoff.ts).
 */
import './platform/quickjs/process.js';
import { main } from './cli.js';
import { PROGRAM, PROBE_CLIENT_COMMAND, TRACE_COMMAND } from './args.js';
import { handOff } from './platform/quickjs/handoff.js';
import { shared } from './platform/quickjs/shared.js';

const args = process.argv.slice(2);
const first = args[0] === PROGRAM ? args[1] : args[0];

async function run(): Promise<number> {
  if (first === TRACE_COMMAND || first === PROBE_CLIENT_COMMAND) {
    try {
      handOff(`the ${first} command`);
    } catch (err) {
      process.stderr.write(`${PROGRAM}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  // The prelude read these same arguments and environment (when they were all flags).
  const read = shared()?.commandLine;
  return main(args, {
    ...(read !== undefined && read.argv.join('\0') === args.join('\0') ? { rawInput: read.raw } : {}),
    beforeEffects(config) {
      if (config.run.runValidation && !config.run.cleanupOnly && !config.run.dryRun) handOff('--run-validation');
    },
  });
}

void run().then((code) => {
  process.exitCode = code;
});
