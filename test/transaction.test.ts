import { describe, expect, it } from 'vitest';
import { Transaction, type Undo } from '../src/apply/engine.js';
import { withRunLock } from '../src/apply/lock.js';
import { changeArgs, routeChanges } from '../src/apply/routes.js';
import { ownedBy, TABLES_WE_WRITE } from '../src/build/owned.js';
import { buildPlan } from '../src/build/plan.js';
import { configFromObject } from '../src/config/from.js';
import { fixedHost } from '../src/config/host.js';
import { routeArgs } from '../src/render/ip.js';
import type { LockAttempt, LockPrimitive } from '../src/platform/platform.js';
import type { RouteStep } from '../src/model/rule.js';

/** An undo that records its call and fails `fails` times (resolving to a problem, or throwing) before it succeeds. */
function undo(what: string, calls: string[], fails = 0, how: 'resolve' | 'throw' = 'resolve'): Undo {
  let left = fails;
  return {
    what,
    run() {
      calls.push(what);
      if (left-- <= 0) return Promise.resolve(undefined);
      if (how === 'throw') return Promise.reject(new Error(`${what} crashed`));
      return Promise.resolve(`${what} refused`);
    },
  };
}

describe('one transaction, one rollback loop', () => {
  it('undoes every step, newest first, and is empty afterwards', async () => {
    const calls: string[] = [];
    const tx = new Transaction();
    expect(tx.changed).toBe(false);
    for (const w of ['ipv4 restore', 'ipv6 restore', 'route']) tx.did(undo(w, calls));
    expect(tx.changed).toBe(true);
    expect(await tx.rollback()).toEqual([]);
    expect(calls).toEqual(['route', 'ipv6 restore', 'ipv4 restore']);
    expect(tx.changed).toBe(false);
    expect(await tx.rollback()).toEqual([]);
  });

  it('tries a failing undo once more (a command killed once must not leave its step behind), then reports it and goes on', async () => {
    const calls: string[] = [];
    const tx = new Transaction();
    tx.did(undo('a', calls));
    tx.did(undo('flaky', calls, 1));
    tx.did(undo('broken', calls, 2, 'throw'));
    expect(await tx.rollback()).toEqual(['broken: broken crashed']);
    expect(calls).toEqual(['broken', 'broken', 'flaky', 'flaky', 'a']);
  });

  it('under a run\'s deadline, the undos run in its undo window (runDeadline: past the deadline, only they start)', async () => {
    const calls: string[] = [];
    let undoing = 0;
    const deadline = { ms: 10, left: () => (undoing > 0 ? 30_000 : 0), passed: () => true, undoing: async <T>(fn: () => Promise<T>) => { undoing++; try { return await fn(); } finally { undoing--; } } };
    const tx = new Transaction(deadline);
    tx.did({ what: 'restore', run: () => Promise.resolve(void calls.push(`restore with ${deadline.left()} ms left`)) });
    await expect(Transaction.run(log().logger, (t) => { t.did({ what: 'route', run: () => Promise.resolve(void calls.push(`route with ${deadline.left()} ms left`)) }); return Promise.reject(new Error('past it')); }, deadline)).rejects.toThrow('past it');
    expect(await tx.rollback()).toEqual([]);
    expect(calls).toEqual(['route with 30000 ms left', 'restore with 30000 ms left']);
  });
});

/** A lock that answers attempts from a script, and a clock that moves only when slept. */
function scripted(answers: LockAttempt[]): { lock: LockPrimitive; clock: { now(): number; sleep(ms: number): Promise<void> }; events: string[] } {
  const events: string[] = [];
  let t = 0;
  let i = 0;
  return {
    events,
    lock: {
      attempt: () => Promise.resolve(answers[Math.min(i++, answers.length - 1)] as LockAttempt),
      keep: () => void events.push('keep'),
      release: () => void events.push('release'),
    },
    clock: { now: () => t, sleep: (ms) => Promise.resolve(void (t += ms)) },
  };
}

const log = () => {
  const lines: string[] = [];
  return { lines, logger: { error: (m: string) => void lines.push(`error ${m}`), warn: (m: string) => void lines.push(`warn ${m}`), info: (m: string) => void lines.push(`info ${m}`), debug() {} } };
};
const ours = { form: 'padded', listening: true, pid: 42, uid: 0, netAdmin: true } as const;
const nobody = { form: 'exact', listening: true, pid: 77, uid: 65534, netAdmin: false } as const;
const bound = { form: 'padded', listening: false, pid: 0, uid: null, netAdmin: null } as const;
const invisible = { form: 'padded', listening: true, pid: 0, uid: null, netAdmin: null } as const;

describe('waiting for the run lock', () => {
  it('held at once: runs, releases', async () => {
    const s = scripted([{ held: true }]);
    const l = log();
    expect(await withRunLock(s.lock, 30, l.logger, s.clock, () => Promise.resolve('done'))).toBe('done');
    expect(s.events).toEqual(['release']);
    expect(l.lines).toEqual([]);
  });

  it('waits for a run of ours (listening, CAP_NET_ADMIN), logging its pid and how long', async () => {
    const s = scripted([{ held: false, holders: [ours] }, { held: false, holders: [ours] }, { held: true }]);
    const l = log();
    await withRunLock(s.lock, 30, l.logger, s.clock, () => Promise.resolve());
    expect(l.lines).toEqual(["info waiting for the network namespace's run lock (istio-iptables/run), held by pid 42 (uid 0), with CAP_NET_ADMIN (up to 30 s)", 'info took the run lock after 20 ms (held by pid 42 (uid 0), with CAP_NET_ADMIN)']);
  });

  it.each([
    ['without CAP_NET_ADMIN', [nobody], 'pid 77 (uid 65534), without CAP_NET_ADMIN'],
    ['bound without listening', [bound], 'a process, bound without listening'],
    ['both forms, the same holder', [nobody, { ...nobody, form: 'padded' as const }], 'pid 77 (uid 65534), without CAP_NET_ADMIN'],
  ])('a name held %s: no wait, what was bound is kept, and said', async (_n, holders, who) => {
    const s = scripted([{ held: false, holders }]);
    const l = log();
    let ran = false;
    await withRunLock(s.lock, 30, l.logger, s.clock, () => Promise.resolve(void (ran = true)));
    expect(ran).toBe(true);
    expect(s.events).toEqual(['keep', 'release']);
    expect(l.lines).toEqual([`warn the run lock's name is held by ${who}: no run of ours; going on without waiting`]);
  });

  it('a holder not visible from here (capabilities unknown) is taken for a run of ours; past the wait, a clear error and nothing run', async () => {
    const s = scripted([{ held: false, holders: [invisible] }]);
    const l = log();
    let ran = false;
    await expect(withRunLock(s.lock, 1, l.logger, s.clock, () => Promise.resolve(void (ran = true)))).rejects.toThrow(
      'another istio-iptables run (a process not visible from here, capabilities unknown) held the network namespace\'s run lock for the 1 s this run waited; nothing was changed',
    );
    expect(ran).toBe(false);
    expect(s.events).toEqual(['release']);
  });

  it('waits no longer than what is left of the run\'s deadline, when that is less than its own bound', async () => {
    const s = scripted([{ held: false, holders: [ours] }]);
    const left = 250;
    const deadline = { ms: 2000, left: () => left, passed: () => false, undoing: <T>(fn: () => Promise<T>) => fn() };
    let ran = false;
    await expect(withRunLock(s.lock, 30, log().logger, s.clock, () => Promise.resolve(void (ran = true)), deadline)).rejects.toThrow(
      /^another istio-iptables run \(pid 42 \(uid 0\), with CAP_NET_ADMIN\) held the network namespace's run lock for the 0\.[23] s this run waited; nothing was changed$/,
    );
    expect(ran).toBe(false);
    expect(s.clock.now()).toBeLessThan(1000);
  });

  it('a failing attempt (the namespace cannot be entered) is an error naming the lock', async () => {
    const s = scripted([]);
    s.lock.attempt = () => Promise.reject(new Error('EPERM'));
    await expect(withRunLock(s.lock, 30, log().logger, s.clock, () => Promise.resolve())).rejects.toThrow('cannot take the run lock of the network namespace: EPERM');
  });
});

describe('what a run owns, and the routing changes that reach it', () => {
  const plan = (values: Record<string, string | boolean>) => buildPlan(configFromObject(values, fixedHost({ proxyUid: 1337 })).capture);
  const names = (steps: readonly { step: RouteStep; op: 'add' | 'del' }[]) => steps.map(({ step, op }) => changeArgs(step, op).slice(1).join(' '));
  const has = (steps: readonly RouteStep[]) => ({ has: (s: RouteStep) => steps.some((x) => routeArgs(x).join(' ') === routeArgs(s).join(' ')) });

  it('owns the built-in rules of both modes in both families, and every routing step either mode adds', () => {
    const owned = ownedBy(plan({ mode: 'REDIRECT', inboundPorts: '*', enableIpv6: false }));
    const chains = (f: 'ipv4' | 'ipv6') => [...new Set(owned.builtin[f].rules.map((r) => `${r.table} ${r.chain}`))].sort();
    expect(chains('ipv4')).toEqual(['mangle OUTPUT', 'mangle PREROUTING', 'nat OUTPUT', 'nat PREROUTING']);
    expect(chains('ipv6')).toEqual(chains('ipv4'));
    expect(owned.routes.map((s) => routeArgs(s).join(' '))).toEqual([
      'ip -6 addr add ::6/128 dev lo',
      'ip -4 rule add fwmark 1337 lookup 133',
      'ip -6 rule add fwmark 1337 lookup 133',
      'ip -4 route add local 0.0.0.0/0 dev lo table 133',
      'ip -6 route add local ::/0 dev lo table 133',
    ]);
    expect(owned.routes.every((s) => s.why.purpose !== '')).toBe(true);
  });

  it('the tables a run of ours writes are TABLES_WE_WRITE, whatever the settings (DNS capture, excluded interfaces, kubevirt, drop-invalid)', () => {
    const everything = plan({ mode: 'TPROXY', inboundPorts: '*', outboundCidrs: '*', enableIpv6: true, redirectDns: true, captureAllDns: true, excludeInterfaces: 'eth1', kubeVirtInterfaces: 'eth2', dropInvalid: true });
    const tables = new Set([...everything.rules, ...ownedBy(everything).builtin.ipv4.rules, ...ownedBy(everything).builtin.ipv6.rules].map((r) => r.table));
    expect([...tables].sort()).toEqual([...TABLES_WE_WRITE].sort());
  });

  it('TPROXY dual stack to REDIRECT IPv4: every step of ours goes, rules before routes before the address; foreign ones are never touched', () => {
    const tproxy = plan({ mode: 'TPROXY', inboundPorts: '*', enableIpv6: true });
    const redirect = plan({ mode: 'REDIRECT', inboundPorts: '*', enableIpv6: false });
    expect(names(routeChanges(redirect.routes, ownedBy(redirect).routes, has(tproxy.routes)))).toEqual([
      '-6 rule del fwmark 1337 lookup 133',
      '-4 rule del fwmark 1337 lookup 133',
      '-6 route del local ::/0 dev lo table 133',
      '-4 route del local 0.0.0.0/0 dev lo table 133',
      '-6 addr del ::6/128 dev lo',
    ]);
  });

  it('REDIRECT IPv4 to TPROXY dual stack: the missing steps are added, the address first, the rules last; in place, nothing', () => {
    const tproxy = plan({ mode: 'TPROXY', inboundPorts: '*', enableIpv6: true });
    expect(names(routeChanges(tproxy.routes, ownedBy(tproxy).routes, has([])))).toEqual([
      '-6 addr add ::6/128 dev lo',
      '-4 route add local 0.0.0.0/0 dev lo table 133',
      '-6 route add local ::/0 dev lo table 133',
      '-4 rule add fwmark 1337 lookup 133',
      '-6 rule add fwmark 1337 lookup 133',
    ]);
    expect(routeChanges(tproxy.routes, ownedBy(tproxy).routes, has(tproxy.routes))).toEqual([]);
  });
});
