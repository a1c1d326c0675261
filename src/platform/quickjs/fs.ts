/** `node:fs` and `node:fs/promises` for the QuickJS entrypoint: the calls the CLI makes, on the host's. */
import { host } from '../host.js';

export function readFileSync(path: string, _encoding?: string): string {
  return host!.readFile(path);
}

export function existsSync(path: string): boolean {
  return host!.exists(path);
}

/** fs/promises' readFile (trace --flows FILE): the same read. */
export async function readFile(path: string, _encoding?: string): Promise<string> {
  return host!.readFile(path);
}
