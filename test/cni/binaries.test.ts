import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { PLUGIN } from '../support/cni.js';

/**
 * Two programs on one runtime: the plugin (dist/cni/istio-cni) speaks only CNI, and the init
 * container's entrypoint (dist/entrypoint/istio-iptables) never acts on CNI_* variables.
 */
const ENTRYPOINT = join(ROOT, 'dist/entrypoint/istio-iptables');
const PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

describe('the plugin and the entrypoint are separate programs', () => {
  it('the entrypoint with CNI_COMMAND set runs the CLI as always', async () => {
    const r = await execa(ENTRYPOINT, ['-p', '15001', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-b', '*', '--enable-ipv6=false', '--dry-run'], {
      env: { PATH, CNI_COMMAND: 'VERSION', CNI_NETNS: '/proc/self/ns/net' },
      extendEnv: false,
      reject: false,
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/-A ISTIO_OUTPUT -j ISTIO_REDIRECT/);
    expect(r.stdout).not.toMatch(/supportedVersions/);
  });

  it("the plugin ignores istio-iptables's command line and answers CNI only", async () => {
    const r = await execa(PLUGIN, ['-p', '15001', '--dry-run', '--help'], { env: { PATH, CNI_COMMAND: 'VERSION' }, extendEnv: false, input: '{"cniVersion":"1.0.0"}', reject: false });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.0.0' });
    const noCni = await execa(PLUGIN, ['--help'], { env: { PATH }, extendEnv: false, input: '', reject: false });
    expect(noCni.exitCode).toBe(1);
    expect(JSON.parse(noCni.stdout)).toMatchObject({ code: 4 });
  });

  it('the plugin is static and reads no program from its environment', async () => {
    const ldd = await execa('ldd', [PLUGIN], { reject: false, all: true });
    expect(ldd.all).toMatch(/not a dynamic executable/);
    // NODE_OPTIONS and the like mean nothing to it.
    const r = await execa(PLUGIN, [], { env: { PATH, CNI_COMMAND: 'VERSION', NODE_OPTIONS: '--require /nonexistent', LD_PRELOAD: '/nonexistent.so' }, extendEnv: false, input: '{}', reject: false });
    expect(r.exitCode).toBe(0);
  });
});
