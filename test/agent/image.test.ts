import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

/** The agent's image builds from the init image's base images, pinned the same (one set of digests to move). */
describe('container/cni/Dockerfile', () => {
  it("pins the same base images as container/Dockerfile, and builds from them only", () => {
    const args = (file: string) => readFileSync(join(ROOT, file), 'utf8').split('\n').filter((l) => l.startsWith('ARG '));
    const ours = readFileSync(join(ROOT, 'container/cni/Dockerfile'), 'utf8');
    expect(args('container/cni/Dockerfile')).toEqual(args('container/Dockerfile'));
    expect(args('container/Dockerfile').length).toBeGreaterThanOrEqual(2);
    expect(ours.split('\n').filter((l) => l.startsWith('FROM ')).map((l) => l.split(' ')[1])).toEqual(['${NODE_IMAGE}', '${DEBIAN_IMAGE}']);
  });
});
