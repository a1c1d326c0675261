/**
 * The istio-cni plugin on the QuickJS runtime (`npm run build:entrypoint` -> dist/cni/istio-cni):
 * its own program, not the init container's entrypoint (which never looks at CNI_* variables).
 * The CNI protocol: the command and parameters from CNI_* variables, the network configuration on
 * stdin, a result or the spec's error object on stdout, logs on stderr (src/cni/plugin.ts).
 */
import './platform/quickjs/process.js';
import { host } from './platform/host.js';
import { runPlugin } from './cni/plugin.js';
import { checkNamespace, programNamespace } from './cni/program.js';
import { askAgent, isOwnNamespace, targetFacts } from './platform/quickjs/cni.js';

const h = host!;

async function run(): Promise<number> {
  let stdin = '';
  try {
    stdin = h.readFile('/dev/stdin');
  } catch {
    // Unreadable stdin is treated as an empty configuration: the plugin answers error 6.
  }
  const out = await runPlugin(h.env, stdin, {
    askAgent: (runDir, request) => askAgent(h, runDir, request),
    namespaceExists: (path) => h.exists(path),
    isOwnNamespace: (path) => isOwnNamespace(h, path),
    targetFacts: (netns) => targetFacts(h, netns),
    apply: programNamespace,
    check: checkNamespace,
    log: (line) => void h.write(2, line),
  });
  if (out.stdout !== '') h.write(1, out.stdout);
  return out.exitCode;
}

void run().then((code) => {
  process.exitCode = code;
});
