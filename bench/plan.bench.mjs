// Plan generation for large configurations against the time the kernel takes to load the result.
//   10,000 outbound CIDRs (-i), 1,000 inbound ports (-b), 1,000 excluded CIDRs (-x)
// "plan" = validate the flags, build the plan, render both restore payloads (in-process, Node);
// "kernel" = iptables-restore --noflush of that payload into a fresh namespace.
// "entrypoint" = the init container's executable printing the same dry run (a whole process); it
// gets 9,000 of the CIDRs, through ISTIO_SERVICE_CIDR: one argument or variable is capped at
// 128 KiB by the kernel, and 10,000 do not fit (nor would they in Istio's own init container).
// Usage (root): npm run build && npm run build:entrypoint && node bench/plan.bench.mjs [rounds]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildPlan, configFromArgs, fixedHost, renderRestore } from '../dist/index.js';

const rounds = Number(process.argv[2] ?? 7);
const cidrs = Array.from({ length: 10_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`).join(',');
const excluded = Array.from({ length: 1_000 }, (_, i) => `172.16.${(i >> 2) & 255}.${(i & 3) * 64}/26`).join(',');
const ports = Array.from({ length: 1_000 }, (_, i) => String(20_000 + i)).join(',');
const args = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', cidrs, '-x', excluded, '-b', ports, '--enable-ipv6=false'];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const planTimes = [];
let payload = '';
for (let i = 0; i < rounds; i++) {
  const t0 = process.hrtime.bigint();
  const config = await configFromArgs(args, {}, fixedHost());
  const plan = buildPlan(config.capture);
  payload = renderRestore(plan.ipv4);
  planTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
const kernelTimes = [];
for (let i = 0; i < rounds; i++) {
  const ns = `iitp-${process.pid}-${i}`;
  spawnSync('ip', ['netns', 'add', ns]);
  try {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('ip', ['netns', 'exec', ns, 'iptables-restore', '--noflush'], { input: payload });
    kernelTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 0) throw new Error(`restore failed: ${r.stderr}`);
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}
const entry = fileURLToPath(new URL('../dist/entrypoint/istio-iptables', import.meta.url));
const cidrs9k = cidrs.split(',').slice(0, 9_000).join(',');
const entryArgs = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-x', excluded, '-b', ports, '--enable-ipv6=false', '--dry-run', '--output', 'json'];
const entryTimes = [];
let entryRules = 0;
for (let i = 0; i < rounds; i++) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(entry, entryArgs, { env: { ...process.env, ISTIO_SERVICE_CIDR: cidrs9k }, encoding: 'utf8', maxBuffer: 64 << 20 });
  entryTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (r.status !== 0) throw new Error(`entrypoint failed: ${r.stderr}`);
  entryRules = JSON.parse(r.stdout).iptablesRestore.split('\n').filter((l) => l.startsWith('-A') || l.startsWith('-I')).length;
}
const rules = payload.split('\n').filter((l) => l.startsWith('-A') || l.startsWith('-I')).length;
const p = median(planTimes);
const k = median(kernelTimes);
console.log(`large config: 10,000 CIDRs, 1,000 ports, 1,000 excluded CIDRs -> ${rules} rules, ${(payload.length / 1024).toFixed(0)} KiB of restore text`);
console.log(`| step | median ms (${rounds} rounds) |`);
console.log('|---|---:|');
console.log(`| validate + plan + render (Node, in-process) | ${p.toFixed(1)} |`);
console.log(`| iptables-restore into a fresh namespace | ${k.toFixed(1)} |`);
console.log(`| plan / kernel | ${(p / k).toFixed(2)}x |`);
console.log(`| entrypoint dry run, 9,000 of the CIDRs (${entryRules} rules; whole process) | ${median(entryTimes).toFixed(1)} |`);
