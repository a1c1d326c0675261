/*
 * Network namespaces for the runtime (the JavaScript side is src/platform/quickjs/platform.ts):
 * opening one that a run is pointed at, doing something inside it, and its run lock.
 *
 *   openNamespace(path)      { fd, id }: the namespace file, checked before use and held open so
 *                            that every later use is the same namespace (no path looked up twice).
 *                            The path is opened O_PATH (a FIFO, a device, a socket: nothing opened
 *                            for reading, nothing that blocks), checked to live on nsfs, reopened
 *                            through /proc/self/fd (the same inode, never the path again) and asked
 *                            its type (NS_GET_NSTYPE: a network namespace). id is "net:[inode]".
 *                            Throws an Error with .code: the errno's name, or ENOTNETNS with .found
 *                            (what the file is instead, in words)
 *   lockAttempt(name, ns)    one attempt at the run lock of namespace ns (an fd from openNamespace,
 *                            null: ours): see below
 *   lockKeep()               hold what the last attempt bound (a name in use by no run of ours)
 *   lockRelease()            give up the lock (or what the last attempt bound)
 *
 * Entering: netns_call runs a function inside the namespace (setns there, straight back); should
 * coming back fail, the process stops at once: nothing may run on in a namespace it did not mean to
 * be in. Sockets made there stay there for life; a file opened there shows that namespace (/proc/net
 * and /proc/sys/net are decided at open).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "netns.h"
#include "names.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

int netns_call(int ns, int (*fn)(void *), void *arg, int *err) {
  if (ns < 0) return fn(arg);
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return *err = errno, NETNS_ENTER_FAILED;
  if (setns(ns, CLONE_NEWNET) < 0) {
    *err = errno;
    close(self);
    return NETNS_ENTER_FAILED;
  }
  int r = fn(arg);
  int saved = errno;
  if (setns(self, CLONE_NEWNET) < 0) {
    static const char msg[] = "istio-iptables: cannot return to the original network namespace; stopping\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
  }
  close(self);
  errno = saved;
  return r;
}

typedef struct {
  int domain, type, protocol;
} SocketArgs;

static int make_socket(void *arg) {
  const SocketArgs *a = arg;
  return socket(a->domain, a->type, a->protocol);
}

int netns_socket(int ns, int domain, int type, int protocol, int *err) {
  SocketArgs a = {domain, type, protocol};
  int fd = netns_call(ns, make_socket, &a, err);
  if (fd == NETNS_ENTER_FAILED) return -1;
  if (fd < 0) return *err = errno, -2;
  return fd;
}

static int open_read(void *path) {
  return open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

int netns_open(int ns, const char *path, int *err) {
  int fd = netns_call(ns, open_read, (void *)path, err);
  if (fd == NETNS_ENTER_FAILED) return -1;
  if (fd < 0) return *err = errno, -2;
  return fd;
}

/* ---------- opening a namespace ---------- */

static JSValue throw_code(JSContext *ctx, const char *code, const char *message, const char *found) {
  JSValue e = JS_NewError(ctx);
  JS_SetPropertyStr(ctx, e, "message", JS_NewString(ctx, message));
  JS_SetPropertyStr(ctx, e, "code", JS_NewString(ctx, code));
  if (found) JS_SetPropertyStr(ctx, e, "found", JS_NewString(ctx, found));
  return JS_Throw(ctx, e);
}

static JSValue throw_errno_code(JSContext *ctx, int err, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, errno_text(err));
  return throw_code(ctx, errno_code(err), msg, NULL);
}

/* What a file that is not a namespace is, in a word, for the message. */
static const char *kind_of(mode_t mode) {
  return S_ISFIFO(mode) ? "is not a network namespace (a FIFO)" : S_ISDIR(mode) ? "is not a network namespace (a directory)" : S_ISSOCK(mode) ? "is not a network namespace (a socket)"
         : S_ISCHR(mode) || S_ISBLK(mode) ? "is not a network namespace (a device)" : S_ISREG(mode) ? "is not a network namespace (a regular file)" : "is not a network namespace";
}

JSValue h_open_namespace(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  int p = open(path, O_PATH | O_CLOEXEC);
  int err = errno;
  JS_FreeCString(ctx, path);
  if (p < 0) return throw_errno_code(ctx, err, "open");
  struct statfs fs;
  struct stat st;
  if (fstatfs(p, &fs) != 0 || fstat(p, &st) != 0) {
    err = errno;
    close(p);
    return throw_errno_code(ctx, err, "stat");
  }
  if ((unsigned long)fs.f_type != NSFS_MAGIC) {
    close(p);
    return throw_code(ctx, "ENOTNETNS", "not a namespace file", kind_of(st.st_mode));
  }
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", p);
  int fd = open(self, O_RDONLY | O_CLOEXEC);
  err = errno;
  close(p);
  if (fd < 0) return throw_errno_code(ctx, err, "open");
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    close(fd);
    return throw_code(ctx, "ENOTNETNS", "a namespace, but not a network namespace", "is a namespace, but not a network namespace");
  }
  char id[64];
  snprintf(id, sizeof id, "net:[%llu]", (unsigned long long)st.st_ino);
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "fd", JS_NewInt32(ctx, fd));
  JS_SetPropertyStr(ctx, o, "id", JS_NewString(ctx, id));
  return o;
}

/* ---------- the run lock ---------- */

/*
 * The lock is an abstract unix socket name in the namespace (the kernel keeps one name space of
 * them per network namespace and frees a name when its holder dies, even by SIGKILL), in two forms:
 * the name alone, and the name padded with zeros to the whole of sun_path, as Node (libuv) binds
 * it; a run holds both, so that runs of either runtime exclude each other.
 *
 * Any process can bind a name, so a name in use is not enough to wait for: the holder is asked who
 * it is. Our holders listen and accept (and drop) every connection, so a connection gets in and
 * SO_PEERCRED names the holder (its pid, as this process sees it, and uid); its capabilities come
 * from /proc/PID/status. A name bound but not listening, or listening but not accepting (its queue
 * full), is no run of ours. lockAttempt returns
 *   { held: true }                                  both forms bound here (listening), kept until
 *                                                   lockRelease() or the end of the process
 *   { held: false, holders: [{ form, listening, pid, uid, netAdmin }] }
 *                                                   the forms in use and what their holder is; what
 *                                                   this attempt bound stays bound for the next
 *                                                   attempt, lockKeep() or lockRelease()
 * pid is 0 and netAdmin null when the holder is not visible from here (another pid namespace).
 */

#define LOCK_SPARE_FDS 12
#define LOCK_BACKLOG 128

static int lock_fds[2] = {-1, -1}; /* padded, exact: bound by this process (listening) */
static int lock_held = 0;

/* CAP_NET_ADMIN (bit 12) in the effective set of /proc/PID/status; -1 when it cannot be read. */
static int has_net_admin(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  char line[256];
  int found = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long long caps;
    if (sscanf(line, "CapEff: %llx", &caps) == 1) {
      found = (caps >> 12) & 1;
      break;
    }
  }
  fclose(f);
  return found;
}

void netns_lock_release(void) {
  lock_held = 0;
  for (int k = 0; k < 2; k++) {
    if (lock_fds[k] >= 0) close(lock_fds[k]);
    lock_fds[k] = -1;
  }
}

JSValue h_lock_release(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  netns_lock_release();
  return JS_UNDEFINED;
}

JSValue h_lock_attempt(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  if (lock_held) return JS_ThrowTypeError(ctx, "lockAttempt: the lock is already held");
  int ns = -1;
  if (argc > 1 && !JS_IsNull(argv[1]) && !JS_IsUndefined(argv[1]) && JS_ToInt32(ctx, &ns, argv[1])) return JS_EXCEPTION;
  size_t len;
  const char *name = JS_ToCStringLen(ctx, &len, argv[0]);
  if (!name) return JS_EXCEPTION;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (len == 0 || len + 1 > sizeof addr.sun_path) {
    JS_FreeCString(ctx, name);
    return JS_ThrowRangeError(ctx, "lock name too long");
  }
  memcpy(addr.sun_path + 1, name, len); /* sun_path[0] = 0: the abstract name space */
  JS_FreeCString(ctx, name);
  static const char *const forms[2] = {"padded", "exact"};
  socklen_t lens[2] = {(socklen_t)sizeof addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)};
  JSValue holders = JS_NewArray(ctx);
  uint32_t busy = 0;
  for (int k = 0; k < 2; k++) {
    if (lock_fds[k] >= 0) continue; /* bound by an earlier attempt */
    int err = 0;
    int fd = netns_socket(ns, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, &err);
    if (fd < 0) {
      JS_FreeValue(ctx, holders);
      netns_lock_release();
      return throw_errno_code(ctx, err, fd == -1 ? "enter the network namespace for its run lock" : "socket");
    }
    if (bind(fd, (struct sockaddr *)&addr, lens[k]) == 0 && listen(fd, LOCK_BACKLOG) == 0) {
      lock_fds[k] = fd;
      continue;
    }
    err = errno;
    close(fd);
    if (err != EADDRINUSE) {
      JS_FreeValue(ctx, holders);
      netns_lock_release();
      return throw_errno_code(ctx, err, "bind");
    }
    /* In use: who holds it? */
    int c = netns_socket(ns, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, &err);
    int listening = 0;
    struct ucred cred = {0};
    socklen_t cl = sizeof cred;
    if (c >= 0) {
      listening = connect(c, (struct sockaddr *)&addr, lens[k]) == 0 && getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0;
      close(c);
    }
    JSValue h = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, h, "form", JS_NewString(ctx, forms[k]));
    JS_SetPropertyStr(ctx, h, "listening", JS_NewBool(ctx, listening));
    JS_SetPropertyStr(ctx, h, "pid", JS_NewInt32(ctx, listening ? cred.pid : 0));
    JS_SetPropertyStr(ctx, h, "uid", listening ? JS_NewInt64(ctx, cred.uid) : JS_NULL);
    int admin = listening && cred.pid > 0 ? has_net_admin(cred.pid) : -1;
    JS_SetPropertyStr(ctx, h, "netAdmin", admin < 0 ? JS_NULL : JS_NewBool(ctx, admin));
    JS_SetPropertyUint32(ctx, holders, busy++, h);
  }
  /* Before anything is changed, make sure a rollback could start its commands: a command takes
     up to 10 descriptors while it starts (four pipes, /dev/null, its pidfd). Under a tighter limit
     the run stops here, having changed nothing. */
  int spare[LOCK_SPARE_FDS], got = 0;
  while (got < LOCK_SPARE_FDS && (spare[got] = fcntl(2, F_DUPFD_CLOEXEC, 0)) >= 0) got++;
  int short_of_fds = got < LOCK_SPARE_FDS ? errno : 0;
  while (got > 0) close(spare[--got]);
  if (short_of_fds) {
    JS_FreeValue(ctx, holders);
    netns_lock_release();
    return throw_errno_code(ctx, short_of_fds, "reserve descriptors for a rollback (raise the open-files limit)");
  }
  JSValue out = JS_NewObject(ctx);
  lock_held = busy == 0;
  JS_SetPropertyStr(ctx, out, "held", JS_NewBool(ctx, lock_held));
  if (busy > 0) JS_SetPropertyStr(ctx, out, "holders", holders);
  else JS_FreeValue(ctx, holders);
  return out;
}

JSValue h_lock_keep(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  lock_held = 1;
  return JS_UNDEFINED;
}

/* The lock's listening sockets, for the event loop: a connection (a run asking who holds it) is
   accepted and dropped at once. They keep nothing alive: the loop ends without them. */
int netns_lock_poll_fill(struct pollfd *fds, int max) {
  int n = 0;
  for (int k = 0; k < 2 && n < max; k++)
    if (lock_fds[k] >= 0) fds[n++] = (struct pollfd){lock_fds[k], POLLIN, 0};
  return n;
}

void netns_lock_poll_done(const struct pollfd *fds, int n) {
  for (int i = 0; i < n; i++) {
    if (!fds[i].revents) continue;
    int c;
    while ((c = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) close(c);
  }
}
