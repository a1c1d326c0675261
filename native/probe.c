/*
 * TCP sockets for the runtime (native/host.c), for the validation probe (src/platform/quickjs/
 * validate.ts): non-blocking, and waited on in host.c's event loop next to the child processes.
 * Added to `__host`:
 *
 *   socket(family, uid, gid)     a non-blocking TCP socket, family 4 or 6; the fd. With uid and
 *                                gid: the socket is the proxy's, made with those as this thread's
 *                                file-system ids (setfsuid, setfsgid around socket(), then put
 *                                back), the ids the kernel's owner matches read (iptables
 *                                -m owner, nft meta skuid/skgid: the socket file's credentials);
 *                                throws EPERM when they cannot be taken (not root, no CAP_SETUID
 *                                or CAP_SETGID, and not those ids already)
 *   address(fd, peer)            { address, port } of the socket's own end, or its peer's
 *   listen(fd, address, port)    bind to address:port and listen
 *   accept(fd)                   a connection's fd (non-blocking), or -1 when none is waiting
 *   connect(fd, address, port, from)
 *                                true when connected at once, false while in progress (wait
 *                                for 'w', then socketError); from: the local address to bind
 *                                first (any port), when given
 *   socketError(fd)              the pending error's code (ECONNREFUSED, ...) or null (SO_ERROR)
 *   recv(fd)                     what is there, as text: "" at end of stream, null when nothing yet
 *   send(fd, text)               bytes written, -1 when the socket cannot take any now
 *   close(fd)                    close it; its pending wait is dropped without a call
 *   wait(fd, what, timeoutMs, done)
 *                                done(true) once fd is readable ('r') or writable ('w'),
 *                                done(false) after timeoutMs; fd -1 is a plain timer
 *   now()                        a monotonic clock in ms
 *
 * Errors throw an Error with .code (EADDRINUSE, ...), as host.c's do. Nothing here reads the
 * environment.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "names.h"

typedef struct Waiter {
  struct Waiter *next;
  int fd;
  short events;
  double deadline; /* 0: none */
  JSValue done;
} Waiter;

static Waiter *waiters = NULL;

static double mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static JSValue throw_sock(JSContext *ctx, int err, const char *what) {
  JSValue e = JS_NewError(ctx);
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, errno_text(err));
  JS_SetPropertyStr(ctx, e, "message", JS_NewString(ctx, msg));
  JS_SetPropertyStr(ctx, e, "code", JS_NewString(ctx, errno_code(err)));
  return JS_Throw(ctx, e);
}

/* address:port as a sockaddr; 0 on success, -1 when address is not an IP address. */
static int to_addr(JSContext *ctx, JSValueConst address, JSValueConst port, struct sockaddr_storage *sa, socklen_t *len) {
  int p;
  if (JS_ToInt32(ctx, &p, port) || p < 0 || p > 65535) return -1;
  const char *a = JS_ToCString(ctx, address);
  if (!a) return -1;
  memset(sa, 0, sizeof *sa);
  struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
  int rc = -1;
  if (inet_pton(AF_INET, a, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    *len = sizeof *v4;
    rc = 0;
  } else if (inet_pton(AF_INET6, a, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
    *len = sizeof *v6;
    rc = 0;
  }
  JS_FreeCString(ctx, a);
  return rc;
}

/*
 * A socket made with this thread's file-system ids set to uid/gid for the moment of socket(): its
 * file carries them, as a socket made by a process running as uid/gid would. setfsuid and
 * setfsgid report no error, so the ids are read back (a call with -1 changes nothing and returns
 * the current id). -1 with errno EPERM when they could not be taken; they are always put back.
 */
static int socket_as(int domain, uid_t uid, gid_t gid) {
  uid_t old_uid = (uid_t)setfsuid((uid_t)-1);
  gid_t old_gid = (gid_t)setfsgid((gid_t)-1);
  int fd = -1, err = EPERM;
  setfsgid(gid);
  setfsuid(uid);
  if ((uid_t)setfsuid((uid_t)-1) == uid && (gid_t)setfsgid((gid_t)-1) == gid) {
    fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    err = errno;
  }
  setfsuid(old_uid);
  setfsgid(old_gid);
  if ((uid_t)setfsuid((uid_t)-1) != old_uid || (gid_t)setfsgid((gid_t)-1) != old_gid) {
    /* Cannot happen (our own ids can always be taken back); if it did, nothing after may run as them. */
    static const char msg[] = "istio-iptables: internal error: could not restore the file-system ids\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
  }
  errno = err;
  return fd;
}

static JSValue p_socket(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int family;
  int64_t uid = -1, gid = -1;
  if (JS_ToInt32(ctx, &family, argv[0])) return JS_EXCEPTION;
  if (family != 4 && family != 6) return JS_ThrowRangeError(ctx, "socket: family must be 4 or 6");
  int as_user = argc > 2 && !JS_IsUndefined(argv[1]);
  if (as_user && (JS_ToInt64(ctx, &uid, argv[1]) || JS_ToInt64(ctx, &gid, argv[2]) || uid < 0 || gid < 0 || uid >= UINT32_MAX || gid >= UINT32_MAX)) {
    return JS_ThrowRangeError(ctx, "socket: uid and gid must be numbers 0-4294967294");
  }
  int domain = family == 4 ? AF_INET : AF_INET6;
  int fd = as_user ? socket_as(domain, (uid_t)uid, (gid_t)gid) : socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_sock(ctx, errno, as_user ? "socket as the proxy's uid/gid" : "socket");
  return JS_NewInt32(ctx, fd);
}

static JSValue p_address(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  int peer = JS_ToBool(ctx, argv[1]) == 1;
  if ((peer ? getpeername(fd, (struct sockaddr *)&sa, &len) : getsockname(fd, (struct sockaddr *)&sa, &len)) < 0) {
    return throw_sock(ctx, errno, peer ? "getpeername" : "getsockname");
  }
  char text[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (sa.ss_family == AF_INET) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&sa;
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&sa;
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
  }
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "address", JS_NewString(ctx, text));
  JS_SetPropertyStr(ctx, o, "port", JS_NewInt32(ctx, port));
  return o;
}

static JSValue p_listen(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd, one = 1;
  struct sockaddr_storage sa;
  socklen_t len;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  if (to_addr(ctx, argv[1], argv[2], &sa, &len)) return JS_ThrowTypeError(ctx, "listen: not an IP address and port");
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&sa, len) < 0) return throw_sock(ctx, errno, "bind");
  if (listen(fd, 16) < 0) return throw_sock(ctx, errno, "listen");
  return JS_UNDEFINED;
}

static JSValue p_accept(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  for (;;) {
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) return JS_NewInt32(ctx, c);
    if (errno == EINTR) continue;
    /* Nothing waiting, or a connection that went away before we took it. */
    if (errno == EAGAIN || errno == ECONNABORTED) return JS_NewInt32(ctx, -1);
    return throw_sock(ctx, errno, "accept");
  }
}

static JSValue p_connect(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  struct sockaddr_storage sa;
  socklen_t len;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  if (to_addr(ctx, argv[1], argv[2], &sa, &len)) return JS_ThrowTypeError(ctx, "connect: not an IP address and port");
  if (argc > 3 && !JS_IsUndefined(argv[3])) {
    struct sockaddr_storage local;
    socklen_t local_len;
    JSValue any = JS_NewInt32(ctx, 0);
    int bad = to_addr(ctx, argv[3], any, &local, &local_len);
    JS_FreeValue(ctx, any);
    if (bad) return JS_ThrowTypeError(ctx, "connect: the local address is not an IP address");
    if (bind(fd, (struct sockaddr *)&local, local_len) < 0) return throw_sock(ctx, errno, "bind");
  }
  while (connect(fd, (struct sockaddr *)&sa, len) < 0) {
    if (errno == EINTR) continue;
    if (errno == EINPROGRESS) return JS_FALSE;
    return throw_sock(ctx, errno, "connect");
  }
  return JS_TRUE;
}

static JSValue p_socket_error(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd, err = 0;
  socklen_t len = sizeof err;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) return JS_NULL;
  return JS_NewString(ctx, errno_code(err));
}

static JSValue p_recv(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  char buf[4096];
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n >= 0) return JS_NewStringLen(ctx, buf, (size_t)n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return JS_NULL;
    return throw_sock(ctx, errno, "recv");
  }
}

static JSValue p_send(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  size_t len;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  const char *s = JS_ToCStringLen(ctx, &len, argv[1]);
  if (!s) return JS_EXCEPTION;
  ssize_t n;
  while ((n = send(fd, s, len, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  int err = errno;
  JS_FreeCString(ctx, s);
  if (n >= 0) return JS_NewInt64(ctx, n);
  if (err == EAGAIN) return JS_NewInt32(ctx, -1);
  return throw_sock(ctx, err, "send");
}

static void drop_waiters(JSContext *ctx, int fd) {
  Waiter **pp = &waiters;
  while (*pp) {
    Waiter *w = *pp;
    if (w->fd == fd) {
      *pp = w->next;
      JS_FreeValue(ctx, w->done);
      free(w);
    } else {
      pp = &w->next;
    }
  }
}

static JSValue p_close(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  if (fd < 0) return JS_UNDEFINED;
  drop_waiters(ctx, fd);
  close(fd);
  return JS_UNDEFINED;
}

static JSValue p_wait(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  double timeout_ms;
  if (JS_ToInt32(ctx, &fd, argv[0]) || JS_ToFloat64(ctx, &timeout_ms, argv[2])) return JS_EXCEPTION;
  const char *what = JS_ToCString(ctx, argv[1]);
  if (!what) return JS_EXCEPTION;
  short events = what[0] == 'w' ? POLLOUT : POLLIN;
  JS_FreeCString(ctx, what);
  if (!JS_IsFunction(ctx, argv[3])) return JS_ThrowTypeError(ctx, "wait: done must be a function");
  if (fd < 0 && !(timeout_ms >= 0)) return JS_ThrowRangeError(ctx, "wait: a timer needs a timeout");
  Waiter *w = calloc(1, sizeof *w);
  if (!w) return JS_ThrowOutOfMemory(ctx);
  w->fd = fd;
  w->events = events;
  w->deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : 0;
  w->done = JS_DupValue(ctx, argv[3]);
  w->next = waiters;
  waiters = w;
  return JS_UNDEFINED;
}

static JSValue p_now(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  return JS_NewFloat64(ctx, mono_ms());
}

static const JSCFunctionListEntry probe_funcs[] = {
    JS_CFUNC_DEF("socket", 3, p_socket),
    JS_CFUNC_DEF("address", 2, p_address),
    JS_CFUNC_DEF("listen", 3, p_listen),
    JS_CFUNC_DEF("accept", 1, p_accept),
    JS_CFUNC_DEF("connect", 4, p_connect),
    JS_CFUNC_DEF("socketError", 1, p_socket_error),
    JS_CFUNC_DEF("recv", 1, p_recv),
    JS_CFUNC_DEF("send", 2, p_send),
    JS_CFUNC_DEF("close", 1, p_close),
    JS_CFUNC_DEF("wait", 4, p_wait),
    JS_CFUNC_DEF("now", 0, p_now),
};

void probe_register(JSContext *ctx, JSValueConst host) {
  JS_SetPropertyFunctionList(ctx, host, probe_funcs, sizeof probe_funcs / sizeof probe_funcs[0]);
}

int probe_pending(void) {
  return waiters != NULL;
}

int probe_poll_fill(struct pollfd *fds, int max, double *next) {
  int n = 0;
  for (Waiter *w = waiters; w; w = w->next) {
    if (w->fd >= 0 && n < max) fds[n++] = (struct pollfd){w->fd, w->events, 0};
    if (w->deadline > 0 && (*next == 0 || w->deadline < *next)) *next = w->deadline;
  }
  return n;
}

void probe_poll_done(JSContext *ctx, const struct pollfd *fds, int n, void (*on_exception)(JSContext *)) {
  double t = mono_ms();
  /* Take the ready and the expired off the list first: their callbacks may add waits or close fds. */
  Waiter *fire = NULL, **tail = &fire, **pp = &waiters;
  while (*pp) {
    Waiter *w = *pp;
    int ready = 0;
    for (int k = 0; k < n; k++) {
      if (fds[k].fd == w->fd && (fds[k].revents & (w->events | POLLERR | POLLHUP | POLLNVAL))) ready = 1;
    }
    if (ready || (w->deadline > 0 && t >= w->deadline)) {
      *pp = w->next;
      w->next = NULL;
      w->events = (short)ready; /* reused: whether it fired ready */
      *tail = w;
      tail = &w->next;
    } else {
      pp = &w->next;
    }
  }
  while (fire) {
    Waiter *w = fire;
    fire = w->next;
    JSValue arg = JS_NewBool(ctx, w->events != 0);
    JSValue r = JS_Call(ctx, w->done, JS_UNDEFINED, 1, &arg);
    if (JS_IsException(r)) on_exception(ctx);
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, w->done);
    free(w);
  }
}
