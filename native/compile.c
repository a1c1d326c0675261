/*
 * Build-time tool: compiles the bundled CLI (one script) to QuickJS bytecode, which host.c embeds.
 * Usage: compile <bundle.js> <out.bin>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quickjs.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <bundle.js> <out.bin>\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) return perror(argv[1]), 1;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *src = malloc((size_t)len + 1);
  if (fread(src, 1, (size_t)len, f) != (size_t)len) return perror(argv[1]), 1;
  src[len] = 0;
  fclose(f);

  JSRuntime *rt = JS_NewRuntime();
  /* No debug information (line numbers, source, variable names): a third of the bytecode the
     runtime would read at every start. Errors keep their messages. */
  JS_SetStripInfo(rt, JS_STRIP_DEBUG);
  JSContext *ctx = JS_NewContext(rt);
  JSValue fn = JS_Eval(ctx, src, (size_t)len, "istio-iptables.js", JS_EVAL_TYPE_GLOBAL | JS_EVAL_FLAG_COMPILE_ONLY);
  if (JS_IsException(fn)) {
    JSValue e = JS_GetException(ctx);
    const char *s = JS_ToCString(ctx, e);
    JSValue st = JS_GetPropertyStr(ctx, e, "stack");
    const char *t = JS_ToCString(ctx, st);
    fprintf(stderr, "%s: %s\n%s\n", argv[1], s ? s : "?", t ? t : "");
    return 1;
  }
  size_t size;
  uint8_t *out = JS_WriteObject(ctx, &size, fn, JS_WRITE_OBJ_BYTECODE);
  if (!out) return fprintf(stderr, "cannot serialize bytecode\n"), 1;
  FILE *o = fopen(argv[2], "wb");
  if (!o || fwrite(out, 1, size, o) != size || fclose(o)) return perror(argv[2]), 1;
  return 0;
}
