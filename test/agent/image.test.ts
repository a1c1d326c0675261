import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

/** The agent's image builds from the init image's base images, pinned the same (one set of digests to move). */
describe('container/cni/Dockerfile', () => {
  const text = (file: string) => readFileSync(join(ROOT, file), 'utf8');
  /** The Debian packages the `build` stage installs (its first `apt-get install` line). */
  const buildPackages = (file: string) => {
    const stage = text(file).split(/^FROM /m).find((s) => / AS build\n/.test(s)) ?? '';
    const line = /apt-get install -y --no-install-recommends ([^\\\n&]+)/.exec(stage);
    return (line?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  };

  it("pins the same base images as container/Dockerfile, and builds from them only", () => {
    const args = (file: string) => text(file).split('\n').filter((l) => l.startsWith('ARG '));
    expect(args('container/cni/Dockerfile')).toEqual(args('container/Dockerfile'));
    expect(args('container/Dockerfile').length).toBeGreaterThanOrEqual(2);
    expect(text('container/cni/Dockerfile').split('\n').filter((l) => l.startsWith('FROM ')).map((l) => l.split(' ')[1])).toEqual(['${NODE_IMAGE}', '${DEBIAN_IMAGE}']);
  });

  it("its build stage installs every package the init image's build stage needs (both run npm run build:entrypoint)", () => {
    const init = buildPackages('container/Dockerfile');
    expect(init).toContain('gcc');
    expect(init.filter((p) => !buildPackages('container/cni/Dockerfile').includes(p))).toEqual([]);
  });
});
