/**
 * The init container's entrypoint: the CLI, compiled with its runtime into one executable
 * (`npm run build:entrypoint` -> dist/entrypoint/istio-iptables). Same behaviour as bin/istio-iptables.js.
 */
import { main } from './cli.js';

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
