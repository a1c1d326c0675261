/* Network namespaces for the runtime: native/netns.c. */
#ifndef ISTIO_IPTABLES_NETNS_H
#define ISTIO_IPTABLES_NETNS_H
#include <poll.h>

#include "quickjs.h"

/* netns_call's result when the namespace could not be entered (*err set). */
#define NETNS_ENTER_FAILED (-1000)

/* Run fn(arg) inside the network namespace ns (an fd; -1: where we are) and come back; fn's result. */
int netns_call(int ns, int (*fn)(void *), void *arg, int *err);
/* A socket made in namespace ns (-1: ours): the fd, or -1 (entering failed) or -2 (socket() failed), *err set. */
int netns_socket(int ns, int domain, int type, int protocol, int *err);
/* A file opened for reading inside namespace ns (-1: ours): the fd, or -1 / -2 as netns_socket. */
int netns_open(int ns, const char *path, int *err);

JSValue h_open_namespace(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv);
JSValue h_lock_attempt(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv);
JSValue h_lock_keep(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv);
JSValue h_lock_release(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv);
/* The lock's listening sockets for the event loop's poll, and what to do once it returned. */
int netns_lock_poll_fill(struct pollfd *fds, int max);
void netns_lock_poll_done(const struct pollfd *fds, int n);

#endif
