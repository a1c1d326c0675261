import { execa } from 'execa';
import { inject } from 'vitest';
import type { ConformanceCase } from '../support/cli.js';

let counter = 0;

/** A network namespace made for one test; everything runs inside it and it is always removed. */
export interface Netns {
  readonly name: string;
  run(cmd: string, args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string; exitCode: number }>;
  remove(): Promise<void>;
}

export async function createNetns(tag: string): Promise<Netns> {
  // iit-<run>-<worker>-...: the run's mark lets its global teardown (setup.ts) tell its own from another suite's.
  const name = `iit-${inject('netnsRun')}-${process.pid}-${tag}-${counter++}`.slice(0, 60);
  await execa('ip', ['netns', 'add', name]);
  const ns: Netns = {
    name,
    async run(cmd, args, input) {
      const r = await execa('ip', ['netns', 'exec', name, cmd, ...args], {
        reject: false,
        timeout: 20_000,
        ...(input === undefined ? {} : { input }),
      });
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 };
    },
    async remove() {
      await execa('ip', ['netns', 'del', name], { reject: false });
    },
  };
  // Bring lo up, as a pod's namespace has it.
  await ns.run('ip', ['link', 'set', 'lo', 'up']);
  return ns;
}

/** Run `fn` with a fresh namespace that is removed afterwards, whatever happens. */
export async function withNetns<T>(tag: string, fn: (ns: Netns) => Promise<T>): Promise<T> {
  const ns = await createNetns(tag);
  try {
    return await fn(ns);
  } finally {
    await ns.remove();
  }
}

/** iptables-save output reduced to state: no comments, no counters. */
export function normalizeSave(text: string): string {
  return text
    .split('\n')
    .filter((line) => line.length > 0 && !line.startsWith('#'))
    .map((line) => line.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

export interface Backend {
  readonly name: 'nft' | 'legacy';
  readonly restore: Record<'ipv4' | 'ipv6', string>;
  readonly save: Record<'ipv4' | 'ipv6', string>;
}

export const BACKENDS: readonly Backend[] = [
  {
    name: 'nft',
    restore: { ipv4: 'iptables-nft-restore', ipv6: 'ip6tables-nft-restore' },
    save: { ipv4: 'iptables-nft-save', ipv6: 'ip6tables-nft-save' },
  },
  {
    name: 'legacy',
    restore: { ipv4: 'iptables-legacy-restore', ipv6: 'ip6tables-legacy-restore' },
    save: { ipv4: 'iptables-legacy-save', ipv6: 'ip6tables-legacy-save' },
  },
];

/** Load a payload with `<restore> --noflush` into a fresh namespace and return the normalized state. */
export async function loadAndSave(backend: Backend, family: 'ipv4' | 'ipv6', payload: string, setup?: (ns: Netns) => Promise<void>): Promise<string> {
  return withNetns(`${backend.name}-${family}`, async (ns) => {
    if (setup) await setup(ns);
    const r = await ns.run(backend.restore[family], ['--noflush'], payload);
    if (r.exitCode !== 0) throw new Error(`${backend.restore[family]} failed (${r.exitCode}): ${r.stderr}\n--- payload ---\n${payload}`);
    const saved = await ns.run(backend.save[family], []);
    if (saved.exitCode !== 0) throw new Error(`${backend.save[family]} failed: ${saved.stderr}`);
    return normalizeSave(saved.stdout);
  });
}

const SAVE_OF = { ipv4: 'iptables-nft-save', ipv6: 'ip6tables-nft-save' } as const;
const RESTORE_OF = { ipv4: 'iptables-nft-restore', ipv6: 'ip6tables-nft-restore' } as const;

/** Load Istio's payloads for a conformance case (the families it has) into a namespace; throws if one fails. */
export async function loadIstioState(ns: Netns, c: ConformanceCase): Promise<void> {
  for (const family of ['ipv4', 'ipv6'] as const) {
    const expected = c.expected[family];
    if (expected === null) continue;
    const r = await ns.run(RESTORE_OF[family], ['--noflush'], expected);
    if (r.exitCode !== 0) throw new Error(`loading Istio's ${family} payload for ${c.name} failed: ${r.stderr}`);
  }
}

/** The namespace's iptables-save per family the conformance case has, normalized for comparison. */
export async function savedState(ns: Netns, c: ConformanceCase): Promise<Partial<Record<'ipv4' | 'ipv6', string>>> {
  const out: Partial<Record<'ipv4' | 'ipv6', string>> = {};
  for (const family of ['ipv4', 'ipv6'] as const) {
    if (c.expected[family] !== null) out[family] = normalizeSave((await ns.run(SAVE_OF[family], [])).stdout);
  }
  return out;
}

/** Everything a run can change: both families' tables on both backends, policy routing, lo's addresses. */
export async function snapshot(ns: Netns): Promise<string> {
  const parts: string[] = [];
  for (const cmd of ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    const r = await ns.run(cmd, []);
    parts.push(`## ${cmd}\n${normalizeSave(r.stdout)}`);
  }
  // inet tables (native nftables mode); the ip/ip6 tables of iptables-nft are covered by iptables-save.
  const nft = await ns.run('nft', ['list', 'ruleset', 'inet']);
  parts.push(`## nft list ruleset inet\n${nft.stdout.replace(/counter packets \d+ bytes \d+/g, 'counter')}`);
  // -d: also each rule's and route's protocol, type and scope (how it was added, not only what it does).
  for (const argv of [['-d', '-4', 'rule'], ['-d', '-6', 'rule'], ['-d', '-4', 'route', 'show', 'table', 'all'], ['-d', '-6', 'route', 'show', 'table', 'all'], ['addr', 'show', 'dev', 'lo']]) {
    const r = await ns.run('ip', argv);
    parts.push(`## ip ${argv.join(' ')}\n${r.stdout.replace(/valid_lft.*$/gm, '')}`);
  }
  return parts.join('\n');
}
