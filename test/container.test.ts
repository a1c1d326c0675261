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

const rootfs = readFileSync(`${ROOT}container/rootfs.sh`, 'utf8');

describe('container/Dockerfile', () => {
  it('builds the entrypoint, collects the programs, and ends with the non-root stage then the root one (the default target)', () => {
    expect([...stages.keys()]).toEqual(['build', 'collect', 'nonroot', 'root']);
    expect(stages.get('build')?.[0]).toBe('FROM ${NODE_IMAGE} AS build');
    expect(stages.get('collect')?.[0]).toBe('FROM ${DEBIAN_IMAGE} AS collect');
    expect(stages.get('nonroot')?.[0]).toBe('FROM scratch AS nonroot');
    expect(stages.get('root')?.[0]).toBe('FROM scratch AS root');
  });

  it('takes its base images pinned by digest, as build arguments CI can point at local stand-ins: Debian bookworm, Node on bookworm, scratch', () => {
    // ARG NAME=registry/repo:tag@sha256:<64 hex>, before the first FROM (so every stage can use it).
    const args = new Map(
      instructions
        .slice(0, instructions.findIndex((l) => /^FROM\s/i.test(l)))
        .map((l) => /^ARG\s+(\w+)=(\S+)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1] ?? '', m[2] ?? '']),
    );
    expect(Object.fromEntries(args)).toEqual({
      NODE_IMAGE: expect.stringMatching(/^docker\.io\/library\/node:20(\.\d+)*-bookworm-slim@sha256:[0-9a-f]{64}$/),
      DEBIAN_IMAGE: expect.stringMatching(/^docker\.io\/library\/debian:bookworm(-\d{8})?-slim@sha256:[0-9a-f]{64}$/),
    });
    for (const line of instructions.filter((l) => /^FROM\s/i.test(l))) {
      const image = line.split(/\s+/)[1] ?? '';
      if (stages.has(image) || image === 'scratch') continue;
      const arg = /^\$\{(\w+)\}$/.exec(image)?.[1];
      expect(arg !== undefined && args.has(arg), line).toBe(true);
    }
    // The digests are written once: here, in container/README.md, nowhere else in the Dockerfile.
    const readme = readFileSync(`${ROOT}container/README.md`, 'utf8');
    for (const ref of args.values()) {
      expect(dockerfile.split(ref.split('@')[1] ?? '')).toHaveLength(2);
      expect(readme).toContain(ref.split('@')[1]);
    }
  });

  it('builds the entrypoint with npm ci and npm run build:entrypoint, gcc and glibc from Debian', () => {
    const build = stages.get('build')?.join('\n') ?? '';
    expect(build).toMatch(/RUN npm ci/);
    expect(build).toMatch(/RUN (BUILD_INFO_BUILD="\$BUILD" )?npm run build:entrypoint/);
    // --version's build line comes from the builder (the context has no .git): scripts/podman-images.sh passes it.
    expect(build).toMatch(/^ARG BUILD=/m);
    expect(readFileSync(`${ROOT}scripts/podman-images.sh`, 'utf8')).toMatch(/--build-arg "BUILD=\$\(node scripts\/build-info\.mjs --build\)"/);
    expect(build).toMatch(/install[^\n]*\bgcc\b[^\n]*\blibc6-dev\b/);
    const collect = stages.get('collect')?.join('\n') ?? '';
    // One executable: the entrypoint runs everything the CLI does; nothing else comes from the build stage.
    expect(collect).toMatch(/^COPY --from=build \/src\/dist\/entrypoint\/istio-iptables \/usr\/local\/bin\/istio-iptables$/m);
    expect(instructions.join('\n')).not.toMatch(/istio-iptables-full/);
    expect(collect.match(/^COPY --from=build/gm)).toHaveLength(1);
  });

  it('installs iptables (both backends), nftables, iproute2 and libcap2-bin in the collect stage only, without recommends, lists cleaned', () => {
    for (const line of instructions.filter((l) => l.includes('apt-get install'))) {
      expect(line).toMatch(/--no-install-recommends/);
      expect(line).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
    }
    const collect = stages.get('collect')?.join('\n') ?? '';
    for (const pkg of ['iptables', 'iproute2', 'nftables', 'libcap2-bin']) expect(collect).toMatch(new RegExp(`install[^\\n]*\\b${pkg}\\b`));
    expect(collect).toMatch(/^COPY --from=build \/src\/dist\/entrypoint\/istio-iptables \/usr\/local\/bin\/istio-iptables$/m);
    expect(collect).toMatch(/^RUN sh \/usr\/local\/sbin\/rootfs.sh \/rootfs \/rootfs-nonroot$/m);
    // Never the Bun-compiled full CLI.
    expect(dockerfile).not.toContain('istio-iptables-full');
  });

  it.each([
    ['root', '/rootfs/', '0:0'],
    ['nonroot', '/rootfs-nonroot/', '65534:65534'],
  ])('%s: one tree copied onto scratch, its user, the lock in /dev/shm, an exec-form entrypoint', (stage, tree, user) => {
    const lines = stages.get(stage) ?? [];
    expect(lines.filter((l) => l.startsWith('COPY'))).toEqual([`COPY --from=collect ${tree} /`]);
    expect(lines.filter((l) => l.startsWith('RUN'))).toEqual([]);
    expect(lines).toContain(`USER ${user}`);
    expect(lines).toContain('ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin XTABLES_LOCKFILE=/dev/shm/xtables.lock');
    const entry = lines.filter((l) => l.startsWith('ENTRYPOINT'));
    expect(entry).toHaveLength(1);
    expect(JSON.parse(entry[0]?.slice('ENTRYPOINT'.length) ?? '')).toEqual(['/usr/local/bin/istio-iptables']);
  });

  it('non-root: the least file capabilities, effective only where the program cannot raise them itself', () => {
    const setcaps = rootfs.split('\n').filter((l) => l.startsWith('setcap '));
    expect(setcaps).toEqual([
      'setcap cap_net_admin+ep "$nonroot/usr/sbin/xtables-nft-multi"',
      'setcap cap_net_admin,cap_net_raw+ep "$nonroot/usr/sbin/xtables-legacy-multi"',
      'setcap cap_net_admin+ep "$nonroot/usr/sbin/nft"',
      'setcap cap_net_admin+p "$nonroot/usr/local/bin/istio-iptables"',
    ]);
    expect(rootfs).not.toMatch(/\+eip/);
  });

  it('.dockerignore keeps node_modules, dist and .git out of the build context', () => {
    const ignored = readFileSync(`${ROOT}.dockerignore`, 'utf8').split('\n');
    for (const p of ['node_modules', 'dist', '.git']) expect(ignored).toContain(p);
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
