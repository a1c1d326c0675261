import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { ROOT } from '../support/cli.js';
import { type Netns, snapshot, withNetns } from './netns.js';

/**
 * The image as a cluster runs it: both variants of container/Dockerfile built by podman
 * (scripts/podman-images.sh, reusing podman's layer cache), then every example of container/k8s
 * run with `podman kube play --network none` in a pod with its own network namespace, under the
 * capabilities Kubernetes gives (scripts/podman-runc-k8s.sh: nothing ambient or inheritable).
 * Each init container must leave exactly what the bare entrypoint leaves in a fresh namespace.
 * The host's namespace is never touched: no bridge, no published port; checked at the end.
 */

const IMAGE = { root: 'localhost/istio-iptables-ts:latest', nonroot: 'localhost/istio-iptables-ts:nonroot' } as const;
/** The examples' app containers (httpbin, Istio's proxy) cannot be pulled here: a Debian shell stands in, and keeps the pod up. */
const APP_IMAGE = 'docker.io/library/debian:bookworm-slim';
const K8S_RUNTIME = join(ROOT, 'scripts/podman-runc-k8s.sh');
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const MAX_BYTES = 20_000_000;
/** The bare entrypoint runs with nothing from the test's environment but a PATH, as in the image. */
const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  imagePullPolicy?: string;
  ports?: unknown;
  securityContext?: Record<string, unknown>;
  [k: string]: unknown;
}
interface Pod {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { restartPolicy?: string; initContainers: Container[]; containers: Container[] };
}

const example = (file: string): Pod => parse(readFileSync(join(ROOT, 'container/k8s', file), 'utf8')) as Pod;
const exampleFiles = readdirSync(join(ROOT, 'container/k8s')).filter((f) => f.endsWith('.yaml'));
const initArgs = (file: string): string[] => example(file).spec.initContainers[0]?.args ?? [];

async function podman(args: readonly string[], timeout = 120_000) {
  return execa('podman', ['--runtime', K8S_RUNTIME, ...args], { reject: false, timeout });
}

/**
 * The example's copy for podman 4.3, adjusted in the test only: restartPolicy Never (under
 * Always podman restarts init containers forever), no containerPorts (--network none rejects
 * published ports), local images never pulled, init containers kept after they exit (their exit
 * code and log), and the app containers replaced by one that sleeps.
 */
function forPodman(pod: Pod, name: string): Pod {
  const init = pod.spec.initContainers.map((c) => {
    const { ports: _ports, ...rest } = c;
    return { ...rest, image: c.image.startsWith('localhost/') ? c.image : `localhost/${c.image}`, imagePullPolicy: 'Never' };
  });
  return {
    ...pod,
    metadata: { name, annotations: { ...pod.metadata.annotations, 'io.podman.annotations.init.container.type': 'always' } },
    spec: {
      ...pod.spec,
      restartPolicy: 'Never',
      initContainers: init,
      containers: [{ name: 'app', image: APP_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '600'] }],
    },
  };
}

const work = mkdtempSync(join(tmpdir(), 'iit-podman-'));
const pods: string[] = [];
let podCount = 0;

interface Played {
  readonly name: string;
  /** Exit code and log of each init container, in order. */
  readonly init: { name: string; exitCode: number; log: string }[];
  /** The pod's network namespace (through its infra container), for reading only. */
  readonly ns: Netns;
}

/** `podman kube play --network none` of a pod; waits for its init containers, returns their results. */
async function play(pod: Pod, tag: string): Promise<Played> {
  const name = `iit-${process.pid}-${tag}-${podCount++}`;
  const copy = forPodman(pod, name);
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringify(copy));
  pods.push(name);
  const r = await podman(['kube', 'play', '--network', 'none', '--log-driver', 'k8s-file', file]);
  const init = [];
  for (const c of copy.spec.initContainers) {
    const ctr = `${name}-${c.name}`;
    const state = await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', ctr]);
    const [status, code] = state.stdout.trim().split(' ');
    // An init container that never started (an earlier one failed) has no exit code.
    const exitCode = state.exitCode === 0 && status === 'exited' ? Number(code) : -1;
    const logs = await execa('podman', ['logs', ctr], { reject: false, all: true, timeout: 20_000 });
    const log = logs.all ?? '';
    init.push({ name: c.name, exitCode, log });
  }
  if (r.exitCode !== 0 && init.every((c) => c.exitCode === 0)) throw new Error(`podman kube play ${name} failed: ${r.stderr}`);
  const infra = (await podman(['pod', 'inspect', '--format', '{{.InfraContainerID}}', name])).stdout.trim();
  const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', infra])).stdout.trim();
  const ns: Netns = {
    name,
    async run(cmd, args, input) {
      if (!/^[1-9]\d*$/.test(pid)) throw new Error(`pod ${name} has no running infra container (pid "${pid}")`);
      const r = await execa('nsenter', ['-t', pid, '-n', cmd, ...args], { reject: false, timeout: 20_000, ...(input === undefined ? {} : { input }) });
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 };
    },
    remove: () => removePod(name),
  };
  return { name, init, ns };
}

async function removePod(name: string): Promise<void> {
  await podman(['pod', 'rm', '--force', '--time', '0', name]);
}

/** What the bare entrypoint (as root, in a fresh namespace) leaves for the same args. */
async function bare(args: readonly string[]): Promise<string> {
  return withNetns('bare', async (ns) => {
    const r = await execa('ip', ['netns', 'exec', ns.name, ENTRYPOINT, ...args], { reject: false, timeout: 30_000, extendEnv: false, env: { PATH: HOST_PATH } });
    if (r.exitCode !== 0) throw new Error(`bare entrypoint failed (${r.exitCode}): ${r.stderr}`);
    return snapshot(ns);
  });
}

/** The host's own namespace, read only: both backends' tables, routing, lo. */
const host: Netns = {
  name: 'host',
  async run(cmd, args) {
    const r = await execa(cmd, args, { reject: false, timeout: 20_000 });
    return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 };
  },
  remove: async () => {},
};

let hostBefore = '';

beforeAll(async () => {
  hostBefore = await snapshot(host);
  if (!existsSync(ENTRYPOINT)) throw new Error(`${ENTRYPOINT} missing: npm run build:entrypoint first (npm test does)`);
  // Builds both variants (seconds when podman's cache holds the layers); fails loudly when podman cannot run.
  const build = await execa('bash', [join(ROOT, 'scripts/podman-images.sh')], { cwd: ROOT, reject: false, timeout: 900_000 });
  if (build.exitCode !== 0) throw new Error(`scripts/podman-images.sh failed (${build.exitCode}):\n${build.stderr}\n${build.stdout}`);
  console.log(build.stdout.trim());
}, 900_000);

afterAll(async () => {
  for (const name of pods) await removePod(name);
  rmSync(work, { recursive: true, force: true });
});

interface MountedFile {
  kind: 'file' | 'link' | 'dir';
  size: number;
  caps: string;
  /** Permission bits, octal. */
  mode: string;
  /** Regular files: their SHA-256; links: their target. */
  content: string;
}

/** Every path in an image with its kind, size, mode, content and file capabilities (the image mounted read-only). */
async function imageFiles(image: string): Promise<Map<string, MountedFile>> {
  const mount = await execa('podman', ['image', 'mount', image]);
  const dir = mount.stdout.trim();
  try {
    const caps = new Map<string, string>();
    const getcap = await execa('getcap', ['-r', dir], { reject: false });
    for (const line of getcap.stdout.split('\n').filter(Boolean)) {
      const [path, set] = line.split(' ');
      caps.set(`/${relative(dir, path ?? '')}`, set ?? '');
    }
    const out = new Map<string, MountedFile>();
    const walk = (d: string) => {
      for (const entry of readdirSync(d)) {
        const p = join(d, entry);
        const st = lstatSync(p);
        const key = `/${relative(dir, p)}`;
        const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
        if (st.isSymbolicLink()) out.set(key, { kind: 'link', size: 0, caps: '', mode, content: readlinkSync(p) });
        else if (st.isDirectory()) {
          out.set(key, { kind: 'dir', size: 0, caps: '', mode, content: '' });
          walk(p);
        } else out.set(key, { kind: 'file', size: statSync(p).size, caps: caps.get(key) ?? '', mode, content: createHash('sha256').update(readFileSync(p)).digest('hex') });
      }
    };
    walk(dir);
    return out;
  } finally {
    await execa('podman', ['image', 'unmount', image], { reject: false });
  }
}

const PROGRAMS = ['/usr/local/bin/istio-iptables', '/usr/sbin/xtables-nft-multi', '/usr/sbin/xtables-legacy-multi', '/usr/sbin/nft', '/usr/bin/ip'];
const ETC = ['/etc/passwd', '/etc/group', '/etc/nsswitch.conf', '/etc/protocols', '/etc/services'];

describe('the images built by podman from container/Dockerfile', () => {
  it.each(Object.entries(IMAGE))('%s: at most 20 MB', async (_variant, image) => {
    const size = Number((await execa('podman', ['image', 'inspect', '--format', '{{.Size}}', image])).stdout);
    expect(size).toBeGreaterThan(1_000_000);
    expect(size).toBeLessThanOrEqual(MAX_BYTES);
  });

  it.each(Object.entries(IMAGE))('%s: only the entrypoint, iptables, nft, ip, their libraries and /etc basics', async (variant, image) => {
    const files = await imageFiles(image);
    const regular = [...files].filter(([, f]) => f.kind === 'file').map(([p]) => p);
    const other = regular.filter((p) => !PROGRAMS.includes(p) && !ETC.includes(p) && !/^\/usr\/lib(64)?\/(x86_64-linux-gnu\/)?(xtables\/)?[\w.+-]+\.so[\d.]*$/.test(p));
    expect(other).toEqual([]);
    for (const p of PROGRAMS) expect(files.get(p)?.kind).toBe('file');
    // No shell, package manager, Node or Bun; not the Bun-compiled full CLI.
    const names = [...files.keys()].map((p) => p.split('/').pop());
    for (const banned of ['sh', 'bash', 'dash', 'busybox', 'apt', 'apt-get', 'dpkg', 'node', 'npm', 'bun', 'istio-iptables-full']) expect(names).not.toContain(banned);
    // The names the entrypoint runs resolve to a program of the image.
    for (const family of ['iptables', 'ip6tables']) {
      for (const backend of ['-nft', '-legacy', '']) for (const op of ['restore', 'save']) expect(files.get(`/usr/sbin/${family}${backend}-${op}`)?.kind).toBe('link');
    }
    const caps = Object.fromEntries([...files].filter(([, f]) => f.caps !== '').map(([p, f]) => [p, f.caps]));
    expect(caps).toEqual(
      variant === 'root'
        ? {}
        : {
            '/usr/local/bin/istio-iptables': 'cap_net_admin=p',
            '/usr/sbin/nft': 'cap_net_admin=ep',
            '/usr/sbin/xtables-legacy-multi': 'cap_net_admin,cap_net_raw=ep',
            '/usr/sbin/xtables-nft-multi': 'cap_net_admin=ep',
          },
    );
    const config = JSON.parse((await execa('podman', ['image', 'inspect', '--format', '{{json .Config}}', image])).stdout) as { User: string; Entrypoint: string[]; Env: string[] };
    expect(config.Entrypoint).toEqual(['/usr/local/bin/istio-iptables']);
    expect(config.User).toBe(variant === 'root' ? '0:0' : '65534:65534');
    expect(config.Env).toContain('XTABLES_LOCKFILE=/dev/shm/xtables.lock');
  });
});

describe('npm run image:files (scripts/image-files.mjs): what is in an image, checkably', () => {
  /** The listing's lines as path -> the same fields imageFiles reads from the mounted image. */
  async function listing(image: string): Promise<{ text: string; files: Map<string, MountedFile> }> {
    const r = await execa('node', [join(ROOT, 'scripts/image-files.mjs'), image], { reject: false, timeout: 120_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const kinds: Record<string, MountedFile['kind']> = { f: 'file', l: 'link', d: 'dir' };
    const files = new Map<string, MountedFile>();
    const [head, ...lines] = r.stdout.split('\n').filter(Boolean);
    expect(head).toBe('# type mode uid:gid size sha256 capabilities path');
    for (const line of lines) {
      const m = /^([fdlhcbp]) ([0-7]{4}) (\d+):(\d+) (\d+|-) ([0-9a-f]{64}|-) (\S+) (\/\S*)(?: -> (\S+))?$/.exec(line);
      if (m === null) throw new Error(`not a listing line: ${line}`);
      const [, type = '', mode = '', uid, gid, size = '-', sha = '-', caps = '-', path = '', link] = m;
      expect([uid, gid], path).toEqual(['0', '0']);
      const kind = kinds[type];
      if (kind === undefined) throw new Error(`unexpected ${type} in the image: ${line}`);
      files.set(path, { kind, size: size === '-' ? 0 : Number(size), caps: caps === '-' ? '' : caps, mode, content: kind === 'file' ? sha : kind === 'link' ? (link ?? '') : '' });
    }
    return { text: r.stdout, files };
  }

  it.each(Object.entries(IMAGE))('%s: every path of the mounted image, with its kind, mode, size, SHA-256 or link target, and file capabilities', async (_variant, image) => {
    const [{ files }, mounted] = await Promise.all([listing(image), imageFiles(image)]);
    expect(files.size).toBeGreaterThan(100);
    expect(Object.fromEntries(files)).toEqual(Object.fromEntries(mounted));
  });

  it('the image\'s entrypoint is the executable npm run build:entrypoint made here, byte for byte (a reproducible build)', async () => {
    const { files } = await listing(IMAGE.root);
    const local = createHash('sha256').update(readFileSync(ENTRYPOINT)).digest('hex');
    // If not: the image's build stage compiled with another gcc or glibc than this machine's (compare dpkg -l gcc-12 libc6-dev),
    // or the image was built without this checkout's BUILD argument (scripts/podman-images.sh passes it; compare --version).
    expect(files.get('/usr/local/bin/istio-iptables')?.content).toBe(local);
  });

  it('the two variants differ only in the file capabilities of the four programs, and the same image lists the same twice', async () => {
    const [root, nonroot, again] = await Promise.all([listing(IMAGE.root), listing(IMAGE.nonroot), listing(IMAGE.root)]);
    expect(again.text).toBe(root.text);
    const differ = [...nonroot.files.keys()].filter((p) => JSON.stringify(nonroot.files.get(p)) !== JSON.stringify(root.files.get(p)));
    expect(differ.sort()).toEqual(['/usr/local/bin/istio-iptables', '/usr/sbin/nft', '/usr/sbin/xtables-legacy-multi', '/usr/sbin/xtables-nft-multi']);
    for (const p of differ) expect({ ...nonroot.files.get(p), caps: '' }).toEqual(root.files.get(p));
    expect([...root.files.keys()]).toEqual([...nonroot.files.keys()]);
  });

  it('a saved image (docker-archive and OCI) lists as the image does; what is not an image fails with a message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iit-image-files-'));
    try {
      const expected = (await listing(IMAGE.nonroot)).text;
      for (const format of ['docker-archive', 'oci-archive']) {
        const file = join(dir, `${format}.tar`);
        await execa('podman', ['save', '--format', format, '-o', file, IMAGE.nonroot]);
        const r = await execa('node', [join(ROOT, 'scripts/image-files.mjs'), '--archive', file], { reject: false });
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stdout).toBe(expected);
      }
      writeFileSync(join(dir, 'not-an-image.tar'), Buffer.alloc(1024));
      const bad = await execa('node', [join(ROOT, 'scripts/image-files.mjs'), '--archive', join(dir, 'not-an-image.tar')], { reject: false });
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toMatch(/^image-files: .*not a saved image/);
      const missing = await execa('node', [join(ROOT, 'scripts/image-files.mjs'), 'localhost/no-such-image:none'], { reject: false });
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toMatch(/^image-files: podman save localhost\/no-such-image:none failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the images alone run everything the CLI does, as the bare entrypoint does', () => {
  const cases: [string, string[]][] = [
    ['--help', ['istio-iptables', '--help']],
    // The build line too: the image was built with this checkout's commit (scripts/podman-images.sh).
    ['--version', ['istio-iptables', '--version']],
    ['an unknown flag', ['istio-iptables', '--no-such-flag']],
    ['a bad value', ['istio-iptables', '-p', '15001x', '--dry-run']],
    ['a REDIRECT dry run', [...initArgs('pod-redirect.yaml'), '--dry-run']],
    ['a TPROXY dry run as JSON', [...initArgs('pod-tproxy.yaml'), '--dry-run', '--output', 'json']],
    // -u: the image has an istio-proxy user (as Istio's images do), the host may not.
    ['trace', ['istio-iptables', 'trace', '-u', '1337', '-m', 'TPROXY', '-b', '*', '-i', '*', 'inbound', 'tcp', '10.0.0.1:40000', '->', '10.0.0.2:8080']],
  ];
  const runs = Object.entries(IMAGE).flatMap(([variant, image]) => cases.map(([what, args]) => [variant, what, image, args] as const));

  it.each(runs)('%s image: %s', async (_variant, _what, image, args) => {
    // Nothing but the image: no network, no capabilities, the image's own user.
    const got = await podman(['run', '--rm', '--network', 'none', '--cap-drop', 'all', image, ...args]);
    const want = await withNetns('cli', (ns) =>
      execa('ip', ['netns', 'exec', ns.name, ENTRYPOINT, ...args], { reject: false, timeout: 30_000, extendEnv: false, env: { PATH: HOST_PATH } }),
    );
    expect({ code: got.exitCode, stdout: got.stdout, stderr: got.stderr }).toEqual({ code: want.exitCode, stdout: want.stdout, stderr: want.stderr });
    expect(got.stdout.length + got.stderr.length).toBeGreaterThan(0);
  });
});

describe('podman kube play of container/k8s, each pod in its own network namespace', () => {
  it('the examples are the four this suite runs', () => {
    expect(exampleFiles.sort()).toEqual(['pod-nonroot.yaml', 'pod-redirect.yaml', 'pod-tproxy.yaml', 'pod-validation.yaml']);
  });

  it('the containers get what Kubernetes gives a non-root container: the bounding set only', async () => {
    const name = `iit-${process.pid}-caps`;
    const r = await podman(['run', '-d', '--name', name, '--network', 'none', '--user', '65534:65534', '--cap-drop', 'all', '--cap-add', 'NET_ADMIN,NET_RAW', APP_IMAGE, 'sleep', '60']);
    try {
      expect(r.exitCode, r.stderr).toBe(0);
      const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', name])).stdout.trim();
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const caps = Object.fromEntries([...status.matchAll(/^(Cap\w+|NoNewPrivs):\s+(\S+)$/gm)].map((m) => [m[1], m[2]]));
      // NET_ADMIN (12) and NET_RAW (13) bounding only; podman alone would make them ambient, inheritable and effective.
      expect(caps).toEqual({ CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000', CapBnd: '0000000000003000', CapAmb: '0000000000000000', NoNewPrivs: '0' });
    } finally {
      await podman(['rm', '--force', '--time', '0', name]);
    }
  });

  it.each(['pod-redirect.yaml', 'pod-tproxy.yaml', 'pod-nonroot.yaml'])('%s: the init container exits 0 and leaves exactly what the bare entrypoint leaves', async (file) => {
    const pod = await play(example(file), file.replace(/^pod-|\.yaml$/g, ''));
    try {
      expect(pod.init.map((c) => [c.name, c.exitCode]), pod.init.map((c) => c.log).join('\n')).toEqual([['istio-init', 0]]);
      const got = await snapshot(pod.ns);
      expect(got).toContain(':ISTIO_OUTPUT');
      expect(got).toBe(await bare(initArgs(file)));
    } finally {
      await pod.ns.remove();
    }
  });

  it('pod-tproxy.yaml: the fwmark rule and the local route are in the pod', async () => {
    const pod = await play(example('pod-tproxy.yaml'), 'tproxy-routes');
    try {
      expect(pod.init[0]?.exitCode, pod.init[0]?.log).toBe(0);
      expect((await pod.ns.run('ip', ['-4', 'rule'])).stdout).toMatch(/from all fwmark 0x539 lookup 133/);
      expect((await pod.ns.run('ip', ['-4', 'route', 'show', 'table', '133'])).stdout).toMatch(/^local default dev lo scope host/m);
    } finally {
      await pod.ns.remove();
    }
  });

  it('pod-validation.yaml: the validation container alone exits 126 (nothing captures)', async () => {
    const pod = await play(example('pod-validation.yaml'), 'validation');
    try {
      expect(pod.init.map((c) => [c.name, c.exitCode]), pod.init.map((c) => c.log).join('\n')).toEqual([['istio-validation', 126]]);
      // The probe's own verdict, not a runtime that could not start the program (also 126).
      expect(pod.init[0]?.log).toMatch(/validation failed/i);
    } finally {
      await pod.ns.remove();
    }
  });

  it('pod-validation.yaml: after pod-redirect.yaml\'s init container, the validation container exits 0', async () => {
    const validation = example('pod-validation.yaml');
    const pod: Pod = { ...validation, spec: { ...validation.spec, initContainers: [...example('pod-redirect.yaml').spec.initContainers, ...validation.spec.initContainers] } };
    const played = await play(pod, 'validated');
    try {
      expect(played.init.map((c) => [c.name, c.exitCode]), played.init.map((c) => c.log).join('\n')).toEqual([
        ['istio-init', 0],
        ['istio-validation', 0],
      ]);
    } finally {
      await played.ns.remove();
    }
  });

  /** pod-nonroot.yaml with other args (and security context changes), run as the example is. */
  function nonrootWith(args: string[], securityContext: Record<string, unknown> = {}, image?: string): Pod {
    const pod = example('pod-nonroot.yaml');
    const init = pod.spec.initContainers[0] as Container;
    return {
      ...pod,
      spec: { ...pod.spec, initContainers: [{ ...init, args, image: image ?? init.image, securityContext: { ...init.securityContext, ...securityContext } }] },
    };
  }
  const tproxyArgs = initArgs('pod-nonroot.yaml').map((a) => (a === 'REDIRECT' ? 'TPROXY' : a));

  // The routing steps (TPROXY's fwmark rules and local routes, ::6 on lo with IPv6) without root.
  it.each([
    ['TPROXY', tproxyArgs, /## ip -d -4 rule\n[^#]*fwmark 0x539 lookup 133/],
    ['TPROXY dual stack', [...tproxyArgs, '--enable-ipv6=true'], /## ip -d -6 rule\n[^#]*fwmark 0x539 lookup 133/],
    ['REDIRECT dual stack', [...initArgs('pod-nonroot.yaml'), '--enable-ipv6=true'], /inet6 ::6\/128 scope/],
  ])('non-root image, Kubernetes-style capabilities: %s applies, routing included', async (_what, args, routing) => {
    const pod = await play(nonrootWith(args), 'nonroot-routing');
    try {
      expect(pod.init[0]?.exitCode, pod.init[0]?.log).toBe(0);
      const got = await snapshot(pod.ns);
      expect(got).toMatch(routing);
      expect(got).toBe(await bare(args));
    } finally {
      await pod.ns.remove();
    }
  });

  it('root image: TPROXY dual stack, as pod-tproxy.yaml with IPv6 on', async () => {
    const tproxy = example('pod-tproxy.yaml');
    const args = [...initArgs('pod-tproxy.yaml'), '--enable-ipv6=true'];
    const init = tproxy.spec.initContainers[0] as Container;
    const pod = await play({ ...tproxy, spec: { ...tproxy.spec, initContainers: [{ ...init, args }] } }, 'tproxy-dual');
    try {
      expect(pod.init[0]?.exitCode, pod.init[0]?.log).toBe(0);
      const got = await snapshot(pod.ns);
      expect(got).toMatch(/## ip -d -6 rule\n[^#]*fwmark 0x539 lookup 133/);
      expect(got).toBe(await bare(args));
    } finally {
      await pod.ns.remove();
    }
  });

  it('the root image run as uid 65534 with the same capabilities fails: the non-root image works through its file capabilities alone', async () => {
    const pod = await play(nonrootWith(initArgs('pod-nonroot.yaml'), {}, IMAGE.root), 'no-file-caps');
    try {
      expect(pod.init[0]?.exitCode, pod.init[0]?.log).toBe(1);
      expect(pod.init[0]?.log).toMatch(/Permission denied|not permitted/i);
      expect(await snapshot(pod.ns)).not.toContain('ISTIO');
    } finally {
      await pod.ns.remove();
    }
  });

  it.each([
    ['nonroot', { runAsUser: 65534, runAsGroup: 65534 }],
    ['root', { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, allowPrivilegeEscalation: false }],
  ] as const)('%s image, read-only root filesystem, legacy backend: the xtables lock is taken in /dev/shm', async (variant, user) => {
    const args = [...initArgs('pod-nonroot.yaml'), '--force-iptables-binary', 'legacy'];
    const pod = await play(nonrootWith(args, { ...user, readOnlyRootFilesystem: true }, IMAGE[variant]), `ro-${variant}`);
    try {
      expect(pod.init[0]?.exitCode, pod.init[0]?.log).toBe(0);
      const got = await snapshot(pod.ns);
      expect(got).toMatch(/## iptables-legacy-save\n[^#]*:ISTIO_OUTPUT/);
      expect(got).toBe(await bare(args));
    } finally {
      await pod.ns.remove();
    }
  });

  it('the validation container of the non-root image starts under drop ALL (no effective file capability on the entrypoint)', async () => {
    const validation = example('pod-validation.yaml');
    const init = validation.spec.initContainers[0] as Container;
    const pod = await play({ ...validation, spec: { ...validation.spec, initContainers: [{ ...init, image: IMAGE.nonroot }] } }, 'nonroot-validation');
    try {
      expect(pod.init[0]?.exitCode, pod.init[0]?.log).toBe(126);
      // The probe ran and failed (nothing captures): an entrypoint the kernel refused to run also exits 126.
      expect(pod.init[0]?.log).toMatch(/validation failed/i);
    } finally {
      await pod.ns.remove();
    }
  });
});

describe('the host', () => {
  it('keeps its own namespace unchanged: tables of both backends, rules, routes, lo', async () => {
    for (const name of pods) await removePod(name);
    expect(await snapshot(host)).toBe(hostBefore);
  });
});
