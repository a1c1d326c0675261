import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/*
 * native/names.h: the entrypoint (linked with musl) carries glibc's names and texts of Linux's error
 * numbers and its signal names, so that it reports errors as the Node CLI and the glibc-built
 * sanitizer build do. Compiled here against glibc itself: every number's name and text equal.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'iit-names-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PROGRAM = `
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "names.h"
static const char *or_null(const char *s) { return s ? s : "(none)"; }
int main(void) {
  for (int e = 1; e < 200; e++) {
    const char *text = strerror(e);
    /* glibc words a number without a text "Unknown error N"; the table has none for it. */
    printf("errno %d %s|%s\\n", e, or_null(strerrorname_np(e)), strncmp(text, "Unknown error", 13) == 0 ? "Unknown error" : text);
    printf("ours  %d %s|%s\\n", e, or_null(errno_name(e)), errno_text(e));
    /* The code an Error carries: the name, or EUNKNOWN (the program exits 1 if not). */
    if (strcmp(errno_code(e), strerrorname_np(e) ? strerrorname_np(e) : "EUNKNOWN") != 0) return 1;
  }
  for (int s = 1; s < 65; s++) {
    printf("sig %d %s\\n", s, or_null(sigabbrev_np(s)));
    printf("our %d %s\\n", s, or_null(signal_name(s)));
  }
  return 0;
}
`;

describe("native/names.h against glibc's own functions", () => {
  it('gives every error number the name and text glibc gives it, and every signal its name', async () => {
    writeFileSync(join(dir, 'names.c'), PROGRAM);
    await execa('gcc', ['-Wall', '-Werror', `-I${join(ROOT, 'native')}`, '-o', join(dir, 'names'), join(dir, 'names.c')]);
    const lines = (await execa(join(dir, 'names'))).stdout.split('\n');
    const pairs = (a: string, b: string) => {
      const theirs = lines.filter((l) => l.startsWith(`${a} `)).map((l) => l.slice(a.length + 1));
      const ours = lines.filter((l) => l.startsWith(`${b} `)).map((l) => l.slice(b.length + 1));
      return { theirs, ours };
    };
    const errors = pairs('errno', 'ours ');
    expect(errors.theirs).toHaveLength(199);
    expect(errors.ours).toEqual(errors.theirs);
    // Linux's usual ones are among them (the table is not empty or shifted).
    expect(errors.ours).toContain('2 ENOENT|No such file or directory');
    expect(errors.ours).toContain('110 ETIMEDOUT|Connection timed out');
    const signals = pairs('sig', 'our');
    expect(signals.theirs).toHaveLength(64);
    expect(signals.ours).toEqual(signals.theirs);
    expect(signals.ours).toContain('15 TERM');
  });
});
