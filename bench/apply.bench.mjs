// End-to-end apply latency in fresh network namespaces, measured side by side, alternating:
//   entrypoint  dist/entrypoint/istio-iptables (our QuickJS runtime + bytecode), in the namespace
//   node-bin    bin/istio-iptables.js under Node, run inside the namespace
//   floor       the unavoidable work: iptables-restore and ip6tables-restore alone, each exec'd
//               directly (bench/floor.c, no shell: a shell costs as much as a restore here), fed
//               precomputed payloads, one after another; routing counted as zero (a few netlink
//               messages)
//   istio-like  Istio's sequence: save both families, restore both, the routing commands one by
//               one, save both again
// Each sample: create a namespace (not timed), run the variant under `ip netns exec` (timed),
// check the rules landed, delete the namespace. Medians over N rounds; ratios to the floor.
// Usage (root): npm run build && npm run build:entrypoint && node bench/apply.bench.mjs [rounds]
// BENCH_CONFIG=REDIRECT (substring of a config name) and BENCH_VARIANTS=entrypoint,floor narrow a run;
// BENCH_COMPARE=name=/path/to/binary,... adds other entrypoint builds side by side (A/B of a change).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const rounds = Number(process.argv[2] ?? 15);
const entry = join(root, 'dist/entrypoint/istio-iptables');
const nodeBin = join(root, 'bin/istio-iptables.js');

const CONFIGS = {
  'REDIRECT IPv4 sidecar': ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=false', '--log_output_level=default:error'],
  'TPROXY dual-stack sidecar': ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=true', '--log_output_level=default:error'],
};

const dir = mkdtempSync(join(tmpdir(), 'iit-bench-'));
let seq = 0;
/** The floor's launcher: fork, stdin from the payload file, exec, wait; one program after another. */
const floorBin = join(dir, 'floor');
execFileSync('cc', ['-O2', '-o', floorBin, join(root, 'bench/floor.c')]);

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A container's PATH, for every variant alike (this machine's own PATH has a dozen more folders to search). */
const POD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function timed(ns, argv) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', env: { PATH: POD_PATH } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return ms;
}

function prepare(name, args) {
  const dry = JSON.parse(execFileSync(process.execPath, [nodeBin, ...args, '--dry-run', '--output', 'json'], { encoding: 'utf8' }));
  const files = { v4: join(dir, `${name}.v4`), v6: join(dir, `${name}.v6`) };
  writeFileSync(files.v4, dry.iptablesRestore ?? '');
  writeFileSync(files.v6, dry.ip6tablesRestore ?? '');
  const floor = [floorBin, files.v4, 'iptables-nft-restore', '--noflush'];
  if (dry.ip6tablesRestore) floor.push('--', files.v6, 'ip6tables-nft-restore', '--noflush');
  const istio = ['iptables-save >/dev/null', ...(dry.ip6tablesRestore ? ['ip6tables-save >/dev/null'] : [])];
  istio.push(`iptables-restore --noflush < ${files.v4}`);
  if (dry.ip6tablesRestore) istio.push(`ip6tables-restore --noflush < ${files.v6}`);
  for (const c of dry.ipCommands) istio.push(c.join(' '));
  istio.push('iptables-save >/dev/null', ...(dry.ip6tablesRestore ? ['ip6tables-save >/dev/null'] : []));
  const script = (lines) => {
    const f = join(dir, `${name}.${seq++}.sh`);
    writeFileSync(f, `set -e\n${lines.join('\n')}\n`);
    return ['sh', f];
  };
  const compare = Object.fromEntries(
    (process.env.BENCH_COMPARE ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), [kv.slice(kv.indexOf('=') + 1), ...args]]),
  );
  return {
    entrypoint: [entry, ...args],
    ...compare,
    'node-bin': [process.execPath, nodeBin, ...args],
    floor,
    'istio-like': script(istio),
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const wanted = process.env.BENCH_VARIANTS?.split(',');
const results = [];
for (const [name, args] of Object.entries(CONFIGS)) {
  if (process.env.BENCH_CONFIG && !name.includes(process.env.BENCH_CONFIG)) continue;
  const variants = Object.fromEntries(
    Object.entries(prepare(name.replace(/\W+/g, '-'), args)).filter(([v]) => v === 'floor' || !wanted || wanted.includes(v) || process.env.BENCH_COMPARE?.includes(`${v}=`)),
  );
  const samples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  const order = Object.keys(variants);
  for (let round = 0; round < rounds + 1; round++) {
    // Rotate the order each round so no variant always runs first.
    const rotated = order.map((_, i) => order[(i + round) % order.length]);
    for (const v of rotated) {
      const ns = `iitb-${process.pid}-${seq++}`;
      sh('ip', ['netns', 'add', ns]);
      try {
        sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
        const ms = timed(ns, variants[v]);
        const saved = sh('ip', ['netns', 'exec', ns, 'iptables-save']);
        if (!saved.includes(':ISTIO_OUTPUT')) throw new Error(`${v}: rules missing after the run`);
        if (round > 0) samples[v].push(ms); // round 0 warms caches and is not counted
      } finally {
        spawnSync('ip', ['netns', 'del', ns]);
      }
    }
  }
  const floor = median(samples.floor);
  for (const [v, xs] of Object.entries(samples)) {
    results.push({ config: name, variant: v, median: median(xs), ratio: median(xs) / floor, min: Math.min(...xs), max: Math.max(...xs) });
  }
}

console.log(`apply latency, ${rounds} alternating rounds per variant, fresh namespace each (ms)\n`);
console.log('| config | variant | median | vs floor | min | max |');
console.log('|---|---|---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.config} | ${r.variant} | ${r.median.toFixed(1)} | ${r.ratio.toFixed(2)}x | ${r.min.toFixed(1)} | ${r.max.toFixed(1)} |`);
}
