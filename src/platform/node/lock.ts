import type { ChildProcess } from 'node:child_process';
import type { Server } from 'node:net';
import { LOCK_NAME } from '../../apply/commands.js';
import type { LockAttempt, LockPrimitive, Namespace } from '../platform.js';
import { NSENTER, passFd } from './runner.js';

/*
 * The run lock under Node (apply/lock.ts decides whether to wait). Node binds an abstract name
 * padded with zeros to the whole of sun_path (the entrypoint binds that form and the name alone).
 * In this process's namespace the name is bound here; in another, by a holder: Node again, under
 * nsenter, answering one attempt per line on its stdin and holding what it bound until its stdin
 * ends (when we release it, or when this process ends in any way).
 *
 * Node cannot ask a socket's peer who it is (SO_PEERCRED), so the holder of a name in use is found
 * as `ss` would: the name's socket in /proc/net/unix (listening or not), its inode among the open
 * files of /proc/[pid]/fd, that process's uid and effective capabilities in /proc/[pid]/status.
 */

type Fs = typeof import('node:fs');

/**
 * Who holds the lock's name in this process's network namespace, as lockAttempt reports it
 * (native/netns.c). Self-contained (its source is also the holder's, in another namespace).
 */
export function holdersOf(fs: Fs, name: string): Extract<LockAttempt, { held: false }>['holders'][number][] {
  const out: { form: 'padded' | 'exact'; listening: boolean; pid: number; uid: number | null; netAdmin: boolean | null }[] = [];
  let owners: Map<string, number> | undefined;
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const path = f.slice(7).join(' ');
    const rest = path.slice(name.length + 1);
    if (!path.startsWith(`@${name}`) || !/^@*$/.test(rest)) continue;
    // __SO_ACCEPTCON (1 << 16) in Flags: listening.
    const listening = (parseInt(f[3] ?? '0', 16) & 0x10000) !== 0;
    let pid = 0;
    let uid: number | null = null;
    let netAdmin: boolean | null = null;
    if (listening) {
      if (owners === undefined) {
        owners = new Map();
        for (const p of fs.readdirSync('/proc')) {
          if (!/^[0-9]+$/.test(p)) continue;
          let fds: string[] = [];
          try {
            fds = fs.readdirSync(`/proc/${p}/fd`);
          } catch {
            continue;
          }
          for (const fd of fds) {
            try {
              const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${p}/fd/${fd}`));
              if (m?.[1] !== undefined && !owners.has(m[1])) owners.set(m[1], Number(p));
            } catch {
              // closed meanwhile
            }
          }
        }
      }
      pid = owners.get(f[6] ?? '') ?? 0;
      if (pid > 0) {
        try {
          const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
          const u = /^Uid:\s+(\d+)/m.exec(status);
          const caps = /^CapEff:\s+([0-9a-f]+)/m.exec(status);
          uid = u?.[1] === undefined ? null : Number(u[1]);
          netAdmin = caps?.[1] === undefined ? null : (parseInt(caps[1].slice(-4), 16) & 0x1000) !== 0;
        } catch {
          // gone meanwhile: unknown
        }
      }
    }
    out.push({ form: rest === '' ? 'exact' : 'padded', listening, pid, uid, netAdmin });
  }
  return out;
}

/** A name in use whose holder could not be found (it went away meanwhile): taken for a run, and tried again. */
const UNKNOWN = { held: false, holders: [{ form: 'padded', listening: true, pid: 0, uid: null, netAdmin: null }] } as const satisfies LockAttempt;

/** Bind the name here, listening and accepting (so that others can ask who holds it): held, or who holds it. */
async function bindHere(fs: Fs, net: typeof import('node:net'), name: string): Promise<{ server?: Server; attempt: LockAttempt }> {
  const server = net.createServer((socket) => socket.destroy());
  const bound = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
    server.listen({ path: `\0${name}` }, () => resolve(true));
  });
  if (bound) {
    server.unref();
    return { server, attempt: { held: true } };
  }
  const holders = holdersOf(fs, name);
  return { attempt: holders.length === 0 ? UNKNOWN : { held: false, holders } };
}

/** The holder's program, run in the other namespace: one attempt per "try" line, a JSON line each. */
const HOLDER = `
const fs = require('node:fs');
const net = require('node:net');
const holdersOf = ${holdersOf.toString()};
const name = process.argv[1];
let server;
const answer = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'try' || server !== undefined) return;
  const s = net.createServer((socket) => socket.destroy());
  s.once('error', (e) => {
    if (e.code !== 'EADDRINUSE') { process.stderr.write(e.message); process.exit(2); }
    const holders = holdersOf(fs, name);
    answer(holders.length === 0 ? ${JSON.stringify(UNKNOWN)} : { held: false, holders });
  });
  s.listen({ path: '\\0' + name }, () => { server = s; answer({ held: true }); });
}).on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
`;

/** Holds the lock in another namespace, through the holder process (started at the first attempt). */
function elsewhere(ns: Namespace): LockPrimitive {
  type Ended = { exitCode?: number | undefined; signal?: string | undefined; stderr: unknown; code?: string };
  // The process and its end apart: an async function returning the subprocess (a promise) would wait for it to end.
  let holder: { proc: ChildProcess; ended: Promise<Ended> } | undefined;
  let lines: string[] = [];
  let wake: (() => void) | undefined;
  const start = async (): Promise<{ proc: ChildProcess; ended: Promise<Ended> }> => {
    const { execa } = await import('execa');
    const h = execa(NSENTER[0] ?? 'nsenter', [...NSENTER.slice(1), process.execPath, '-e', HOLDER, LOCK_NAME], {
      // No environment but PATH, so no variable (NODE_OPTIONS) changes the code it runs.
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      extendEnv: false,
      stdio: ['pipe', 'pipe', 'pipe', passFd(ns.fd)],
      reject: false,
    });
    let partial = '';
    h.stdout?.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      wake?.();
    });
    const ended = h.then((r): Ended => {
      const code = (r as { code?: string }).code;
      return { exitCode: r.exitCode, signal: r.signal, stderr: r.stderr, ...(code === undefined ? {} : { code }) };
    });
    void ended.then(() => wake?.());
    h.unref();
    (h.stdout as { unref?: () => void } | null)?.unref?.();
    (h.stdin as { unref?: () => void } | null)?.unref?.();
    return { proc: h, ended };
  };
  return {
    async attempt() {
      const { proc: h, ended } = (holder ??= await start());
      h.stdin?.write('try\n');
      // The holder answers at once; bounded all the same, whatever it does.
      const deadline = Date.now() + 30_000;
      while (lines.length === 0) {
        if (h.exitCode !== null || h.signalCode !== null || Date.now() > deadline) {
          const done = await Promise.race([ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000))]);
          h.kill('SIGKILL');
          const code = (done as { code?: string } | undefined)?.code;
          const how = code === 'ENOENT' ? 'nsenter not found' : done?.exitCode !== undefined ? `exit ${done.exitCode}` : done?.signal !== undefined ? `signal ${done.signal}` : 'no answer';
          throw new Error(`the run lock's holder in ${ns.file} failed (${how})${done === undefined ? '' : `: ${String(done.stderr).trim()}`}`);
        }
        await new Promise<void>((r) => {
          wake = () => r();
          setTimeout(() => r(), 100);
        });
      }
      const line = lines.shift() ?? '';
      lines = [];
      return JSON.parse(line) as LockAttempt;
    },
    keep() {},
    release() {
      holder?.proc.stdin?.end();
      holder = undefined;
    },
  };
}

/** The run lock of a namespace under Node: bound here for our own, by a holder for another. */
export function nodeLock(ns: Namespace | undefined): LockPrimitive {
  if (ns !== undefined) return elsewhere(ns);
  let server: Server | undefined;
  return {
    async attempt() {
      const [fs, net] = await Promise.all([import('node:fs'), import('node:net')]);
      const r = await bindHere(fs, net, LOCK_NAME);
      server = r.server;
      return r.attempt;
    },
    keep() {},
    release() {
      server?.close();
      server = undefined;
    },
  };
}
