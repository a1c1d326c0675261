import type { openNamespace } from './namespace.js';
import type { logConfiguration } from '../log-blocks.js';
import type { Platform } from '../platform/platform.js';

/*
 * What the CLI needs only for a run that reads or changes a namespace: the one door, the platform
 * (the validation probe's own command) and the configuration block an apply logs. Under Node they
 * are loaded when such a run first asks, so that a dry run told whether to plan IPv6 (or a trace)
 * loads none of them: fewer modules than a dry run loaded before the door existed. The entrypoint
 * has them in its program already: scripts/bundle-quickjs.mjs puts platform/quickjs/door.ts in
 * this module's place (a dynamic import there would wrap every module the door reaches in a lazy
 * initializer, ~0.4 M instructions per apply), and checks that both export the same.
 */

export interface Door {
  readonly openNamespace: typeof openNamespace;
  readonly platform: Platform;
  readonly logConfiguration: typeof logConfiguration;
}

/** The contract both implementations are held to. */
export type LoadDoor = () => Promise<Door>;

export const loadDoor: LoadDoor = async () => {
  const [{ openNamespace }, { platform }, { logConfiguration }] = await Promise.all([import('./namespace.js'), import('../platform/node.js'), import('../log-blocks.js')]);
  return { openNamespace, platform, logConfiguration };
};
