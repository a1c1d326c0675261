/* Sockets for the validation probe (native/probe.c), waited on in host.c's event loop. */
#ifndef ISTIO_IPTABLES_PROBE_H
#define ISTIO_IPTABLES_PROBE_H
#include <poll.h>
#include <stdio.h>

#include "quickjs.h"

/* Adds socket, address, listen, accept, connect, socketError, recv, send, close, wait and now to host. */
void probe_register(JSContext *ctx, JSValueConst host);
/* Whether a wait is pending (the event loop goes on while one is). */
int probe_pending(void);
/* The pending waits' fds, at most max; lowers *next (0: none yet) to the earliest deadline. */
int probe_poll_fill(struct pollfd *fds, int max, double *next);
/* After poll: calls the waits whose fd is ready (fds, n as filled) or whose deadline passed. */
void probe_poll_done(JSContext *ctx, const struct pollfd *fds, int n, void (*on_exception)(JSContext *));

#endif
