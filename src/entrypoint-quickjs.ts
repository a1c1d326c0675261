/**
 * The init container's entrypoint on the QuickJS runtime (native/host.c; `npm run
 * build:entrypoint` -> dist/entrypoint/istio-iptables). Same CLI as bin/istio-iptables.js: dry
 * runs, errors, applying, reconciling, cleaning up and diff run here; --help, unknown arguments,
 * --run-validation, trace and very large configurations are handed to the full CLI next to it
 * (platform/quickjs/handoff.ts).
 */
import './platform/quickjs/process.js';
import { main } from './cli.js';
import { PROGRAM, PROBE_CLIENT_COMMAND, TRACE_COMMAND, withoutProgram } from './args.js';
import { handOff } from './platform/quickjs/handoff.js';
import { host } from './platform/host.js';
import { shared } from './platform/quickjs/shared.js';

const args = host!.argv;
const first = withoutProgram(args)[0];

/**
 * Past this many list items (ports, CIDRs, interfaces, ...) in all values together, the full
 * CLI's JIT beats this interpreter. Dry runs measured with N outbound CIDRs, here / full CLI:
 * 300: 7 / 19 ms, 500: 16 / 21, 700: 15 / 21, 800: 21 / 21, 1,000: 32 / 28, 2,000: 42 / 25 (a port
 * costs less than a CIDR). A sidecar configuration has a handful.
 */
const LARGE_CONFIGURATION_ITEMS = 600;

function listItems(values: Readonly<Record<string, unknown>>): number {
  let n = 0;
  for (const v of Object.values(values)) if (typeof v === 'string') n += v.split(',').length;
  return n;
}

async function run(): Promise<number> {
  // The prelude read these same arguments and environment (when they were all flags).
  const read = shared()?.rawInput;
  const large = read !== undefined && listItems(read.values) > LARGE_CONFIGURATION_ITEMS;
  if (first === TRACE_COMMAND || first === PROBE_CLIENT_COMMAND || large) {
    try {
      handOff(large ? 'a configuration this large' : `the ${first} command`);
    } catch (err) {
      if (!large) {
        process.stderr.write(`${PROGRAM}: ${(err as Error).message}\n`);
        return 1;
      }
      // Without the full CLI, a large configuration is still run here, only slower.
    }
  }
  return main(args, {
    ...(read !== undefined ? { rawInput: read } : {}),
    beforeEffects(config) {
      if (config.run.runValidation && !config.run.cleanupOnly && !config.run.dryRun) handOff('--run-validation');
    },
  });
}

void run().then((code) => {
  process.exitCode = code;
});
