/*
 * What the istio-cni plugin (dist/cni/istio-cni) needs of the runtime beyond the entrypoint's
 * calls; linked and registered only in the plugin's build (-DCNI_PLUGIN), so the init container's
 * entrypoint is unchanged. Added to `__host`:
 *
 *   unixConnect(path)            a non-blocking, close-on-exec unix stream socket connected to
 *                                path (the node agent's socket), its fd; throws an Error with
 *                                .code (ENOENT, ECONNREFUSED, EAGAIN when its backlog is full...).
 *                                Read and written with probe.c's recv, send, wait and close.
 *   fileId(path)                 "<device>:<inode>" of what path names (stat, following links):
 *                                two paths name the same network namespace when their ids are
 *                                equal; throws an Error with .code
 *
 * Nothing here reads the environment.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "quickjs.h"
#include "names.h"

static JSValue throw_code(JSContext *ctx, int err, const char *what, const char *path) {
  JSValue e = JS_NewError(ctx);
  char msg[sizeof(((struct sockaddr_un *)0)->sun_path) + 160];
  snprintf(msg, sizeof msg, "%s %s: %s", what, path, errno_text(err));
  JS_SetPropertyStr(ctx, e, "message", JS_NewString(ctx, msg));
  JS_SetPropertyStr(ctx, e, "code", JS_NewString(ctx, errno_code(err)));
  return JS_Throw(ctx, e);
}

static JSValue c_unix_connect(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  size_t len;
  const char *path = JS_ToCStringLen(ctx, &len, argv[0]);
  if (!path) return JS_EXCEPTION;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  /* A path that does not fit is refused, never cut short (it would name another socket). */
  if (len == 0 || len >= sizeof addr.sun_path || memchr(path, 0, len)) {
    JS_FreeCString(ctx, path);
    return JS_ThrowRangeError(ctx, "unixConnect: the path is empty or longer than a unix socket address holds");
  }
  memcpy(addr.sun_path, path, len);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    JSValue r = throw_code(ctx, errno, "socket for", path);
    JS_FreeCString(ctx, path);
    return r;
  }
  int rc;
  while ((rc = connect(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1))) < 0 && errno == EINTR) {
  }
  if (rc < 0) {
    int err = errno;
    close(fd);
    JSValue r = throw_code(ctx, err, "connect to", path);
    JS_FreeCString(ctx, path);
    return r;
  }
  JS_FreeCString(ctx, path);
  return JS_NewInt32(ctx, fd);
}

static JSValue c_file_id(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  struct stat st;
  if (stat(path, &st) != 0) {
    JSValue r = throw_code(ctx, errno, "stat", path);
    JS_FreeCString(ctx, path);
    return r;
  }
  JS_FreeCString(ctx, path);
  char id[64];
  snprintf(id, sizeof id, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
  return JS_NewString(ctx, id);
}

static const JSCFunctionListEntry cni_funcs[] = {
    JS_CFUNC_DEF("unixConnect", 1, c_unix_connect),
    JS_CFUNC_DEF("fileId", 1, c_file_id),
};

void cni_register(JSContext *ctx, JSValueConst host) {
  JS_SetPropertyFunctionList(ctx, host, cni_funcs, sizeof cni_funcs / sizeof cni_funcs[0]);
}
