import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configFromArgs, fixedHost } from '../src/index.js';
import { ROOT } from './support/cli.js';

/** The image definition and the Kubernetes examples, checked without a container engine. */
const dockerfile = readFileSync(`${ROOT}container/Dockerfile`, 'utf8');
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
const stages = new Map<string, string[]>();
let current = '';
for (const line of instructions) {
  const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
  if (from) {
    current = from[2] ?? from[1] ?? '';
    stages.set(current, [line]);
  } else stages.get(current)?.push(line);
}

describe('container/Dockerfile', () => {
  it('has a build stage, a slim runtime stage and a non-root stage', () => {
    expect([...stages.keys()]).toEqual(['build', 'runtime', 'nonroot']);
    expect(stages.get('runtime')?.[0]).toMatch(/^FROM debian:bookworm-slim AS runtime$/);
    expect(stages.get('nonroot')?.[0]).toMatch(/^FROM runtime AS nonroot$/);
  });

  it('pins every base image (no latest, no untagged image)', () => {
    for (const line of instructions.filter((l) => l.startsWith('FROM'))) {
      const image = line.split(/\s+/)[1] ?? '';
      if (stages.has(image)) continue;
      expect(image).toMatch(/:[\w.-]+$/);
      expect(image).not.toMatch(/:latest$/);
    }
  });

  it('builds the entrypoint with npm ci and copies only it into the runtime', () => {
    const build = stages.get('build')?.join('\n') ?? '';
    expect(build).toMatch(/RUN npm ci/);
    expect(build).toMatch(/RUN npm run build:entrypoint/);
    expect(build).toMatch(/COPY native \.\/native/);
    expect(build).toMatch(/install[^\n]*\bgcc\b[^\n]*\blibc6-dev\b/);
    const runtime = stages.get('runtime')?.join('\n') ?? '';
    // One executable: the entrypoint runs everything the CLI does.
    expect(runtime).toMatch(/^COPY --from=build \/src\/dist\/entrypoint\/istio-iptables \/usr\/local\/bin\/$/m);
    expect(runtime).not.toMatch(/istio-iptables-full/);
    expect(runtime.match(/^COPY/gm)).toHaveLength(1);
  });

  it('installs iptables (both backends), nftables and iproute2 without recommends and cleans apt lists', () => {
    for (const line of instructions.filter((l) => l.includes('apt-get install'))) {
      expect(line).toMatch(/--no-install-recommends/);
      expect(line).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
    }
    const runtime = stages.get('runtime')?.join('\n') ?? '';
    for (const pkg of ['iptables', 'iproute2', 'nftables']) expect(runtime).toMatch(new RegExp(`install[^\\n]*\\b${pkg}\\b`));
  });

  it('uses an exec-form entrypoint', () => {
    const entry = instructions.filter((l) => l.startsWith('ENTRYPOINT'));
    expect(entry).toHaveLength(1);
    expect(JSON.parse(entry[0]?.slice('ENTRYPOINT'.length) ?? '')).toEqual(['/usr/local/bin/istio-iptables']);
  });

  it('non-root: file capabilities on every program that talks to the kernel, a non-root user, a writable lock', () => {
    const nonroot = stages.get('nonroot')?.join('\n') ?? '';
    for (const bin of ['/usr/sbin/xtables-nft-multi', '/usr/sbin/xtables-legacy-multi', '/usr/sbin/nft', '/usr/bin/ip']) {
      expect(nonroot).toContain(`setcap cap_net_admin,cap_net_raw+eip ${bin}`);
    }
    expect(nonroot).toMatch(/^USER 65534:65534$/m);
    expect(nonroot).toMatch(/^ENV XTABLES_LOCKFILE=\/tmp\/xtables.lock$/m);
  });
});

interface PodSpec {
  kind: string;
  spec: { initContainers: { name: string; args: string[]; securityContext: Record<string, unknown> }[] };
}

export const examples = readdirSync(`${ROOT}container/k8s`)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => [f, parse(readFileSync(`${ROOT}container/k8s/${f}`, 'utf8')) as PodSpec] as const);

describe('container/k8s examples', () => {
  it('cover REDIRECT, TPROXY, validation and non-root', () => {
    expect(examples.map(([f]) => f).sort()).toEqual(['pod-nonroot.yaml', 'pod-redirect.yaml', 'pod-tproxy.yaml', 'pod-validation.yaml']);
  });

  it.each(examples)('%s: a Pod whose init container args are valid istio-iptables args', async (_f, pod) => {
    expect(pod.kind).toBe('Pod');
    const init = pod.spec.initContainers[0];
    expect(init?.args[0]).toBe('istio-iptables');
    const config = await configFromArgs(init?.args ?? [], {}, fixedHost());
    expect(config.capture.proxyPort).toBe(15001);
  });

  it('the TPROXY example uses TPROXY, the validation example only validates as the proxy uid', async () => {
    const get = (f: string) => examples.find(([n]) => n === f)?.[1].spec.initContainers[0];
    expect((await configFromArgs(get('pod-tproxy.yaml')?.args ?? [], {}, fixedHost())).capture.mode).toBe('TPROXY');
    const validation = get('pod-validation.yaml');
    const run = (await configFromArgs(validation?.args ?? [], {}, fixedHost())).run;
    expect([run.runValidation, run.skipRuleApply]).toEqual([true, true]);
    expect(validation?.securityContext['runAsUser']).toBe(1337);
  });
});
