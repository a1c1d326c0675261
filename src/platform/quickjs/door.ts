import type { LoadDoor } from '../../api/door.js';
import { openNamespace } from '../../api/namespace.js';
import { logConfiguration } from '../../log-blocks.js';
import { platform } from './platform.js';

/* The entrypoint's (in place of api/door.ts, which says why): all of it is in the program already. */

const door = { openNamespace, platform, logConfiguration };

export const loadDoor: LoadDoor = () => Promise.resolve(door);
