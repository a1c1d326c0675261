/** `node:fs` for the QuickJS entrypoint: the two calls the CLI makes, on the host's. */
import { host } from '../host.js';

export function readFileSync(path: string, _encoding?: string): string {
  return host!.readFile(path);
}

export function existsSync(path: string): boolean {
  return host!.exists(path);
}
