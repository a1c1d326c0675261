// Start-up and a default-level apply of entrypoint builds side by side (an A/B of a change):
//   version   `--version`: the runtime's start, the program loaded, one line printed
//   dry-run   a sidecar's dry run: flags read, plan built, payloads printed
//   apply     the sidecar applied in a fresh namespace (not timed: making and deleting it) at the
//             default log level, so what is logged (the configuration, the inputs, the rules
//             after) is in the time; `apply-quiet` the same at --log_output_level=default:error
// Rounds alternate the builds (the order rotating each round); medians, and each build's ratio to
// the first. Usage (root): node bench/startup.bench.mjs [rounds]
//   BENCH_BUILDS=before=/path/to/istio-iptables,after=dist/entrypoint/istio-iptables (default: this checkout's only)
//   BENCH_CASES=version,dry-run (default: all)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const rounds = Number(process.argv[2] ?? 100);
const builds = (process.env.BENCH_BUILDS ?? `current=${join(root, 'dist/entrypoint/istio-iptables')}`)
  .split(',')
  .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]);
const SIDECAR = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--enable-ipv6=false'];
const CASES = {
  version: { args: ['--version'] },
  'dry-run': { args: [...SIDECAR, '--dry-run'] },
  apply: { args: SIDECAR, netns: true },
  'apply-quiet': { args: [...SIDECAR, '--log_output_level=default:error'], netns: true },
};
const wanted = process.env.BENCH_CASES?.split(',');
const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
let seq = 0;

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

/** One timed run (ms); in a fresh namespace made and deleted around it, untimed, when the case applies. */
function once(bin, c) {
  const ns = c.netns ? `iits-${process.pid}-${seq++}` : undefined;
  if (ns) {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  }
  try {
    const argv = ns ? ['ip', ['netns', 'exec', ns, bin, ...c.args]] : [bin, c.args];
    const t0 = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv[1], { env, encoding: 'utf8', maxBuffer: 16 << 20 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${bin} ${c.args.join(' ')} failed: ${r.stderr}`);
    return ms;
  } finally {
    if (ns) spawnSync('ip', ['netns', 'del', ns]);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

console.log(`entrypoint builds side by side, ${rounds} alternating rounds per case (ms)\n`);
console.log(`| case | ${builds.map(([n]) => n).join(' | ')} | ${builds.slice(1).map(([n]) => `${n} / ${builds[0][0]}`).join(' | ')} |`);
console.log(`|---|${builds.map(() => '---:').join('|')}|${builds.slice(1).map(() => '---:').join('|')}|`);
for (const [name, c] of Object.entries(CASES)) {
  if (wanted && !wanted.includes(name)) continue;
  const samples = builds.map(() => []);
  const n = c.netns ? Math.max(10, Math.round(rounds / 4)) : rounds;
  for (let round = 0; round <= n; round++) {
    for (let k = 0; k < builds.length; k++) {
      const i = (k + round) % builds.length;
      const ms = once(builds[i][1], c);
      if (round > 0) samples[i].push(ms); // round 0 warms caches
    }
  }
  const m = samples.map(median);
  console.log(`| ${name} (${n}) | ${m.map((x) => x.toFixed(2)).join(' | ')} | ${m.slice(1).map((x) => `${(x / m[0]).toFixed(3)}x`).join(' | ')} |`);
}
