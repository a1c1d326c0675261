// Connection set-up cost through the capture rules with a long -x list, side by side:
//   iptables     iptables-restore of the dry run's IPv4 payload (the system's iptables: nft-backed here)
//   legacy       iptables-legacy-restore of the same payload
//   nft          `nft -f -` of the --native-nftables script (one rule per excluded CIDR)
//   nft --sets   `nft -f -` of the --native-nftables --nft-sets script (one rule, one anonymous set)
// Config: REDIRECT, -i '*', -x with CIDRS non-adjacent /24s (so nft cannot fold them into ranges),
// none containing the destination: every new connection's SYN walks the whole exclusion list in
// nat OUTPUT, then is redirected to a listener on 15001 in the pod. Each variant gets its own
// pod/peer namespace pair; a client running as uid 1000 in the pod times connect() to the peer's
// 10.10.0.1:80 (closed with RST so no TIME_WAIT piles up). Rounds alternate the variants, rotating
// the order; medians over N connections per variant.
// Usage (root): npm run build && node bench/nft-sets.bench.mjs [connections=300] [cidrs=5000]
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const nodeBin = join(root, 'bin/istio-iptables.js');
const N = Number(process.argv[2] ?? 300);
const CIDRS = Number(process.argv[3] ?? 5000);
const ROUNDS = 6;
const PER_ROUND = Math.ceil(N / ROUNDS);

const cidrs = Array.from({ length: CIDRS }, (_, i) => `172.${16 + (i >> 7)}.${(i & 127) * 2}.0/24`);
if (cidrs.some((c) => c.startsWith('10.'))) throw new Error('exclusions must not cover the destination');
const ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', cidrs.join(','), '-b', '', '--enable-ipv6=false', '--log_output_level=default:error'];

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function dryRun(extra) {
  return JSON.parse(sh(process.execPath, [nodeBin, ...ARGS, '--native-nftables', ...extra, '--dry-run', '--output', 'json']));
}

const plain = dryRun([]);
const withSets = dryRun(['--nft-sets']);
const VARIANTS = {
  iptables: { load: (ns) => sh('ip', ['netns', 'exec', ns, 'iptables-restore', '--noflush'], plain.iptablesRestore) },
  legacy: { load: (ns) => sh('ip', ['netns', 'exec', ns, 'iptables-legacy-restore', '--noflush'], plain.iptablesRestore) },
  nft: { load: (ns) => sh('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], plain.nftScript) },
  'nft --sets': { load: (ns) => sh('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], withSets.nftScript) },
};
const ruleLines = (s) => s.split('\n').filter((l) => /^(add|insert) rule /.test(l)).length;

const SERVER = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 15001)); s.listen(4096); print('ready', flush=True)
while True:
    c, _ = s.accept(); c.close()
`;
const CLIENT = `
import os, socket, struct, sys, time, json
os.setgroups([]); os.setgid(1000); os.setuid(1000)
n = int(sys.argv[1]); out = []
linger = struct.pack('ii', 1, 0)
for _ in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger); s.settimeout(2)
    t0 = time.perf_counter_ns(); s.connect(('10.10.0.1', 80)); t1 = time.perf_counter_ns()
    # (nothing listens on the peer's port 80: a connect only succeeds when redirected to 15001)
    s.close(); out.append((t1 - t0) / 1000)
print(json.dumps(out))
`;

const created = [];
const children = [];
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const ns of created) spawnSync('ip', ['netns', 'del', ns]);
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

async function makePod(tag) {
  const pod = `iitsb${process.pid}${tag}p`;
  const peer = `iitsb${process.pid}${tag}q`;
  for (const ns of [pod, peer]) {
    sh('ip', ['netns', 'add', ns]);
    created.push(ns);
  }
  sh('ip', ['-n', pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'p0', 'netns', peer]);
  sh('ip', ['-n', pod, '-batch', '-'], 'link set lo up\naddr add 10.10.0.2/24 dev eth0\nlink set eth0 up\nroute add default via 10.10.0.1 dev eth0\n');
  sh('ip', ['-n', peer, '-batch', '-'], 'link set lo up\naddr add 10.10.0.1/24 dev p0\nlink set p0 up\n');
  const server = spawn('ip', ['netns', 'exec', pod, 'python3', '-u', '-c', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(server);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server not ready in 5 s')), 5000);
    server.stdout.on('data', (d) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return pod;
}

function batch(pod, n) {
  return JSON.parse(sh('ip', ['netns', 'exec', pod, 'python3', '-c', CLIENT, String(n)]));
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

try {
  const pods = {};
  const loadMs = {};
  let i = 0;
  for (const [name, v] of Object.entries(VARIANTS)) {
    pods[name] = await makePod(i++);
    const t0 = process.hrtime.bigint();
    v.load(pods[name]);
    loadMs[name] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  const names = Object.keys(VARIANTS);
  for (const name of names) batch(pods[name], 20); // warm up: caches, conntrack, the python client
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names.map((_, k) => names[(k + round) % names.length])) samples[name].push(...batch(pods[name], PER_ROUND));
  }
  const base = median(samples['nft --sets']);
  console.log(`connect() through nat OUTPUT with ${CIDRS} excluded /24s (-x), none matching; ${samples.nft.length} connections per variant in ${ROUNDS} alternating rounds (µs)\n`);
  console.log(`rules: iptables payload ${plain.iptablesRestore.split('\n').filter((l) => l.startsWith('-A') || l.startsWith('-I')).length}, nft script ${ruleLines(plain.nftScript)}, nft --sets script ${ruleLines(withSets.nftScript)}\n`);
  console.log('| variant | median | p90 | vs nft --sets | load (ms) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const name of names) {
    const xs = samples[name];
    console.log(`| ${name} | ${median(xs).toFixed(1)} | ${pct(xs, 0.9).toFixed(1)} | ${(median(xs) / base).toFixed(2)}x | ${loadMs[name].toFixed(0)} |`);
  }
} finally {
  cleanup();
}
