/*
 * The entrypoint's routing over rtnetlink, instead of running `ip` (one process per family saved,
 * and it works without root: `ip` drops its capabilities unless CAP_NET_ADMIN is inheritable,
 * which Kubernetes never makes it, while this executable holds cap_net_admin as a file capability
 * in the non-root image). The JavaScript side is src/platform/quickjs/netlink.ts; a failure is
 * reported as what it is (errno, its name, the kernel's extended ack, where it failed), and worded
 * for people in one place (src/apply/routes.ts).
 *
 * Each request is the one `ip` sends for the same command (iproute2 6.1, checked with strace):
 *   ip -4|-6 rule add fwmark M lookup T       RTM_NEWRULE, CREATE|EXCL, FR_ACT_TO_TBL, FRA_FWMARK;
 *                                             no priority: the kernel picks the one below the first
 *                                             non-zero rule (32765 on a fresh namespace)
 *   ip -4|-6 rule del fwmark M lookup T       RTM_DELRULE, FR_ACT_UNSPEC, FRA_FWMARK
 *   ip -4|-6 route add local DFLT dev lo table T
 *                                             RTM_NEWROUTE, CREATE|EXCL, RTN_LOCAL, RTPROT_BOOT,
 *                                             scope host (IPv4) / universe (IPv6), RTA_DST zeros,
 *                                             RTA_OIF lo; `del`: no protocol, same type and scope
 *   ip -6 addr add|del A/P dev lo             RTM_NEWADDR|RTM_DELADDR, IFA_LOCAL and IFA_ADDRESS A
 * Tables below 256 go in the header, others in FRA_TABLE/RTA_TABLE, as ip does.
 *
 *   netlinkChange(ns, op, kind, family, mark, table, address, prefixLength)
 *       op 0 add, 1 del; kind 0 fwmark rule, 1 local route, 2 lo address; family 4 or 6.
 *       null when done, else { errno, code, text, extack, where } (where: "kernel" for the
 *       kernel's answer, "namespace", "socket" or "device" for what failed before it)
 *   netlinkDump(ns, kind, family)
 *       { lo, items }: rules { table, action, mark, mask, priority }, routes { table, type,
 *       dstLength, oif }, addresses { index, prefixLength, address } (every interface's: the
 *       target's addresses decide IPv6); throws an Error with .code, .errno, .extack, .where
 *   netlinkTables(ns, family)
 *       the names of the nf_tables tables of family ip (4) or ip6 (6) (NFT_MSG_GETTABLE)
 * ns is null for this process's namespace, or a namespace's fd from openNamespace (native/netns.c):
 * the socket is made there (setns there and straight back) and used for every later call in the
 * same namespace.
 *
 * Replies are read with a deadline, must come from the kernel with our sequence number, and are
 * parsed within the received length only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/fib_rules.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "quickjs.h"
#include "netns.h"
#include "names.h"

#define NL_TIMEOUT_MS 5000
#define NL_ATTRS 256

/* One request: a header, the family's message, room for a few attributes. */
typedef struct {
  struct nlmsghdr n;
  union {
    struct fib_rule_hdr rule;
    struct rtmsg route;
    struct ifaddrmsg addr;
    struct ifinfomsg link;
    struct nfgenmsg nf;
  } m;
  char attrs[NL_ATTRS];
} Request;

/* Where a failure happened, for the message the JavaScript side gives (as ip words it). */
typedef enum { AT_KERNEL, AT_NAMESPACE, AT_SOCKET, AT_DEVICE } Where;

typedef struct {
  int err; /* positive errno, 0 when done */
  Where where;
  char extack[256];
} Outcome;

static int nl_fd = -1;
static unsigned long long nl_ns; /* the namespace nl_fd was opened in (ns_identity) */
static uint32_t nl_seq;
static int nl_lo; /* lo's index in that namespace, 0 until looked up */
static char nl_buf[65536]; /* one datagram: the kernel sends at most 32 KB per dump part */

static double nl_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int set_opt(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

/*
 * In the non-root image the entrypoint holds CAP_NET_ADMIN as a permitted file capability only
 * (+p, not +ep: a file with the effective bit fails to exec wherever the bounding set lacks the
 * capability, as in Istio's istio-validation container with drop: ALL). The kernel checks the
 * capability, effective, both when the socket is opened and when a change is sent: raise it from
 * permitted to effective first. Nothing to do as root (already effective), and nothing possible
 * where it is not permitted (the kernel then answers EPERM, which is reported as ip reports it).
 * Children are not affected: a non-root exec recomputes their capabilities from their own files.
 */
static void raise_net_admin(void) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
  const unsigned i = CAP_TO_INDEX(CAP_NET_ADMIN);
  const uint32_t bit = CAP_TO_MASK(CAP_NET_ADMIN);
  if (syscall(SYS_capget, &h, d) != 0 || (d[i].effective & bit) != 0 || (d[i].permitted & bit) == 0) return;
  d[i].effective |= bit;
  (void)syscall(SYS_capset, &h, d);
}

/* A namespace's identity (its nsfs inode; 0 for ours), so a socket is reused only where it was made. */
static unsigned long long ns_identity(int ns) {
  struct stat st;
  return ns >= 0 && fstat(ns, &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

/*
 * A netlink socket of `protocol` for namespace ns (an fd from openNamespace; -1: ours), with
 * extended acks: made once and kept in *fd for every later call in the same namespace (*made says
 * which). 0, or -1 with o set.
 */
static int nl_open(int ns, int protocol, int *fd, unsigned long long *made, Outcome *o) {
  unsigned long long want = ns_identity(ns);
  if (*fd >= 0 && *made == want) return 0;
  if (*fd >= 0) close(*fd);
  *fd = -1;
  raise_net_admin();
  int err = 0;
  int s = netns_socket(ns, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol, &err);
  if (s < 0) return o->where = s == -1 ? AT_NAMESPACE : AT_SOCKET, o->err = err, -1;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    o->where = AT_SOCKET, o->err = errno;
    close(s);
    return -1;
  }
  set_opt(s, SOL_NETLINK, NETLINK_EXT_ACK, 1);
  set_opt(s, SOL_NETLINK, NETLINK_CAP_ACK, 1); /* errors without a copy of our request */
  *fd = s;
  *made = want;
  return 0;
}

/* The routing socket (lo's index is looked up again in a new namespace). */
static int nl_socket(int ns, Outcome *o) {
  unsigned long long was = nl_ns;
  int fd = nl_fd;
  if (nl_open(ns, NETLINK_ROUTE, &nl_fd, &nl_ns, o) != 0) return -1;
  if (nl_fd != fd || nl_ns != was) nl_lo = 0;
  return 0;
}

static int add_attr(Request *r, unsigned short type, const void *data, size_t len) {
  size_t at = NLMSG_ALIGN(r->n.nlmsg_len);
  size_t need = at + NLA_HDRLEN + len;
  if (need > sizeof *r) return -1;
  struct nlattr a = {.nla_len = (unsigned short)(NLA_HDRLEN + len), .nla_type = type};
  memcpy((char *)r + at, &a, sizeof a);
  if (len) memcpy((char *)r + at + NLA_HDRLEN, data, len);
  r->n.nlmsg_len = (uint32_t)NLA_ALIGN(need);
  return 0;
}

static int add_u32(Request *r, unsigned short type, uint32_t v) {
  return add_attr(r, type, &v, sizeof v);
}

/* The extended ack's message (NLMSGERR_ATTR_MSG), if the error carries one. */
static void read_extack(const struct nlmsghdr *h, Outcome *o) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return;
  const struct nlmsgerr *e = NLMSG_DATA(h);
  size_t off = sizeof *e;
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
    if (e->msg.nlmsg_len < NLMSG_HDRLEN) return;
    off += e->msg.nlmsg_len - NLMSG_HDRLEN;
  }
  off = NLMSG_HDRLEN + NLMSG_ALIGN(off);
  while (off + NLA_HDRLEN <= h->nlmsg_len) {
    const struct nlattr *a = (const struct nlattr *)((const char *)h + off);
    if (a->nla_len < NLA_HDRLEN || a->nla_len > h->nlmsg_len - off) return;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      size_t n = a->nla_len - NLA_HDRLEN;
      if (n >= sizeof o->extack) n = sizeof o->extack - 1;
      memcpy(o->extack, (const char *)a + NLA_HDRLEN, n);
      o->extack[n] = 0;
      o->extack[strnlen(o->extack, n)] = 0;
      return;
    }
    off += NLA_ALIGN(a->nla_len);
  }
}

/* Called for each data message of a reply; returns 0, or an errno to report once the reply is read. */
typedef int (*OnMessage)(const struct nlmsghdr *h, void *arg);

/*
 * Send a request and read its reply to the end: the ack (NLMSG_ERROR, error 0 or not) of a
 * change or a lookup, or NLMSG_DONE of a dump. Datagrams not from the kernel and messages with
 * another sequence number (a late reply to an earlier request) are skipped. Bounded by
 * NL_TIMEOUT_MS in all. Returns the outcome's errno (0: done).
 */
static int nl_talk_on(int fd, Request *r, OnMessage on, void *arg, Outcome *o) {
  int dump = (r->n.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  r->n.nlmsg_flags |= NLM_F_REQUEST | (dump ? 0 : NLM_F_ACK);
  r->n.nlmsg_seq = ++nl_seq;
  r->n.nlmsg_pid = 0;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t sent;
  do sent = sendto(fd, r, r->n.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent != (ssize_t)r->n.nlmsg_len) return o->where = AT_SOCKET, o->err = sent < 0 ? errno : EIO;
  double deadline = nl_now_ms() + NL_TIMEOUT_MS;
  int failed = 0, interrupted = 0;
  for (;;) {
    int left = (int)(deadline - nl_now_ms());
    struct pollfd p = {fd, POLLIN, 0};
    int ready = left > 0 ? poll(&p, 1, left) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return o->where = AT_SOCKET, o->err = ready < 0 ? errno : ETIMEDOUT;
    struct sockaddr_nl from;
    struct iovec iov = {nl_buf, sizeof nl_buf};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return o->where = AT_SOCKET, o->err = errno;
    if (msg.msg_flags & MSG_TRUNC) return o->where = AT_SOCKET, o->err = EMSGSIZE;
    if (msg.msg_namelen != sizeof from || from.nl_pid != 0) continue;
    int len = (int)n;
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)nl_buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != r->n.nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return o->where = AT_SOCKET, o->err = EBADMSG;
        int e = -((const struct nlmsgerr *)NLMSG_DATA(h))->error;
        if (e < 0 || e > 4095) return o->where = AT_SOCKET, o->err = EBADMSG;
        if (e) read_extack(h, o);
        o->where = AT_KERNEL;
        return o->err = e ? e : failed;
      }
      if (h->nlmsg_type == NLMSG_DONE) {
        int e = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) memcpy(&e, NLMSG_DATA(h), sizeof e);
        o->where = AT_KERNEL;
        if (e) return o->err = -e > 0 && -e <= 4095 ? -e : EBADMSG;
        /* A dump that changed while it was read may be inconsistent: the caller reads it again. */
        return o->err = failed ? failed : interrupted ? EAGAIN : 0;
      }
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = 1;
      if (on && !failed) failed = on(h, arg);
    }
  }
}

static int nl_talk(Request *r, OnMessage on, void *arg, Outcome *o) {
  return nl_talk_on(nl_fd, r, on, arg, o);
}

/* lo's index in the socket's namespace, looked up by name as ip does (RTM_GETLINK). */
static int on_link(const struct nlmsghdr *h, void *arg) {
  if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) return 0;
  *(int *)arg = ((const struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
  return 0;
}

static int loopback(Outcome *o) {
  if (nl_lo > 0) return 0;
  Request r = {.n = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)), .nlmsg_type = RTM_GETLINK}};
  r.m.link.ifi_family = AF_UNSPEC;
  int index = 0;
  if (add_attr(&r, IFLA_IFNAME, "lo", 3) || nl_talk(&r, on_link, &index, o)) {
    if (o->err == ENODEV) o->where = AT_DEVICE;
    return -1;
  }
  if (index <= 0) return o->where = AT_DEVICE, o->err = ENODEV, -1;
  nl_lo = index;
  return 0;
}

static int change(int del, int kind, int family, uint32_t mark, uint32_t table, const char *address, int prefix, Outcome *o) {
  int af = family == 6 ? AF_INET6 : AF_INET;
  size_t alen = af == AF_INET6 ? 16 : 4;
  Request r = {.n = {.nlmsg_flags = del ? 0 : NLM_F_CREATE | NLM_F_EXCL}};
  int bad = 0;
  if (kind == 0) {
    r.n.nlmsg_type = del ? RTM_DELRULE : RTM_NEWRULE;
    r.n.nlmsg_len = NLMSG_LENGTH(sizeof r.m.rule);
    r.m.rule.family = (unsigned char)af;
    r.m.rule.action = del ? FR_ACT_UNSPEC : FR_ACT_TO_TBL;
    r.m.rule.table = table < 256 ? (unsigned char)table : RT_TABLE_UNSPEC;
    bad |= add_u32(&r, FRA_FWMARK, mark);
    if (table >= 256) bad |= add_u32(&r, FRA_TABLE, table);
  } else if (kind == 1) {
    if (loopback(o)) return o->err;
    uint8_t zeros[16] = {0};
    r.n.nlmsg_type = del ? RTM_DELROUTE : RTM_NEWROUTE;
    r.n.nlmsg_len = NLMSG_LENGTH(sizeof r.m.route);
    r.m.route.rtm_family = (unsigned char)af;
    r.m.route.rtm_table = table < 256 ? (unsigned char)table : RT_TABLE_UNSPEC;
    r.m.route.rtm_protocol = del ? RTPROT_UNSPEC : RTPROT_BOOT;
    r.m.route.rtm_scope = af == AF_INET ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
    r.m.route.rtm_type = RTN_LOCAL;
    if (table >= 256) bad |= add_u32(&r, RTA_TABLE, table);
    bad |= add_attr(&r, RTA_DST, zeros, alen);
    bad |= add_u32(&r, RTA_OIF, (uint32_t)nl_lo);
  } else if (kind == 2) {
    uint8_t a[16];
    if (!address || inet_pton(af, address, a) != 1 || prefix < 0 || (size_t)prefix > alen * 8) return o->where = AT_SOCKET, o->err = EINVAL;
    if (loopback(o)) return o->err;
    r.n.nlmsg_type = del ? RTM_DELADDR : RTM_NEWADDR;
    r.n.nlmsg_len = NLMSG_LENGTH(sizeof r.m.addr);
    r.m.addr.ifa_family = (unsigned char)af;
    r.m.addr.ifa_prefixlen = (unsigned char)prefix;
    /* ip's default scope: host for 127.x.x.x, else universe (the kernel derives IPv6's itself). */
    r.m.addr.ifa_scope = !del && af == AF_INET && a[0] == 127 ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
    r.m.addr.ifa_index = (uint32_t)nl_lo;
    bad |= add_attr(&r, IFA_LOCAL, a, alen);
    bad |= add_attr(&r, IFA_ADDRESS, a, alen);
  } else {
    return o->where = AT_SOCKET, o->err = EINVAL;
  }
  if (bad) return o->where = AT_SOCKET, o->err = EMSGSIZE;
  return nl_talk(&r, NULL, NULL, o);
}

/* ---------- dumps ---------- */

typedef struct {
  JSContext *ctx;
  JSValue items;
  uint32_t count;
  int kind, af;
} Dump;

/* The attributes of a message after its family header, by type (the last of each type wins). */
static void attrs(const struct nlmsghdr *h, size_t header, const struct nlattr **tb, int max) {
  for (int i = 0; i <= max; i++) tb[i] = NULL;
  size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(header);
  while (off + NLA_HDRLEN <= h->nlmsg_len) {
    const struct nlattr *a = (const struct nlattr *)((const char *)h + off);
    if (a->nla_len < NLA_HDRLEN || a->nla_len > h->nlmsg_len - off) return;
    int type = a->nla_type & NLA_TYPE_MASK;
    if (type <= max) tb[type] = a;
    off += NLA_ALIGN(a->nla_len);
  }
}

static int u32_of(const struct nlattr *a, uint32_t *v) {
  if (!a || a->nla_len < NLA_HDRLEN + sizeof *v) return 0;
  memcpy(v, (const char *)a + NLA_HDRLEN, sizeof *v);
  return 1;
}

static int put(Dump *d, JSValue o, const char *name, JSValue v) {
  return JS_SetPropertyStr(d->ctx, o, name, v) < 0 ? -1 : 0;
}

#define MAX_ATTR 32

static int on_item(const struct nlmsghdr *h, void *arg) {
  Dump *d = arg;
  JSContext *ctx = d->ctx;
  const struct nlattr *tb[MAX_ATTR + 1];
  JSValue o = JS_UNDEFINED;
  uint32_t v = 0;
  int bad = 0;
  if (d->kind == 0 && h->nlmsg_type == RTM_NEWRULE && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct fib_rule_hdr))) {
    const struct fib_rule_hdr *f = NLMSG_DATA(h);
    if (f->family != d->af) return 0;
    attrs(h, sizeof *f, tb, MAX_ATTR);
    if (JS_IsException(o = JS_NewObject(ctx))) return ENOMEM;
    bad |= put(d, o, "table", JS_NewUint32(ctx, u32_of(tb[FRA_TABLE], &v) ? v : f->table));
    bad |= put(d, o, "action", JS_NewInt32(ctx, f->action));
    bad |= put(d, o, "mark", u32_of(tb[FRA_FWMARK], &v) ? JS_NewUint32(ctx, v) : JS_NULL);
    bad |= put(d, o, "mask", u32_of(tb[FRA_FWMASK], &v) ? JS_NewUint32(ctx, v) : JS_NULL);
    bad |= put(d, o, "priority", u32_of(tb[FRA_PRIORITY], &v) ? JS_NewUint32(ctx, v) : JS_NewInt32(ctx, 0));
  } else if (d->kind == 1 && h->nlmsg_type == RTM_NEWROUTE && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct rtmsg))) {
    const struct rtmsg *rt = NLMSG_DATA(h);
    if (rt->rtm_family != d->af) return 0;
    attrs(h, sizeof *rt, tb, MAX_ATTR);
    if (JS_IsException(o = JS_NewObject(ctx))) return ENOMEM;
    bad |= put(d, o, "table", JS_NewUint32(ctx, u32_of(tb[RTA_TABLE], &v) ? v : rt->rtm_table));
    bad |= put(d, o, "type", JS_NewInt32(ctx, rt->rtm_type));
    bad |= put(d, o, "dstLength", JS_NewInt32(ctx, rt->rtm_dst_len));
    bad |= put(d, o, "oif", u32_of(tb[RTA_OIF], &v) ? JS_NewUint32(ctx, v) : JS_NULL);
  } else if (d->kind == 2 && h->nlmsg_type == RTM_NEWADDR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifaddrmsg))) {
    const struct ifaddrmsg *a = NLMSG_DATA(h);
    if (a->ifa_family != d->af) return 0;
    attrs(h, sizeof *a, tb, MAX_ATTR);
    /* As ip shows it: the local address, else the address. */
    const struct nlattr *at = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    size_t alen = d->af == AF_INET6 ? 16 : 4;
    char text[INET6_ADDRSTRLEN];
    if (!at || at->nla_len < NLA_HDRLEN + alen || !inet_ntop(d->af, (const char *)at + NLA_HDRLEN, text, sizeof text)) return 0;
    if (JS_IsException(o = JS_NewObject(ctx))) return ENOMEM;
    bad |= put(d, o, "index", JS_NewUint32(ctx, a->ifa_index));
    bad |= put(d, o, "prefixLength", JS_NewInt32(ctx, a->ifa_prefixlen));
    bad |= put(d, o, "address", JS_NewString(ctx, text));
  } else {
    return 0;
  }
  if (bad) {
    JS_FreeValue(ctx, o);
    return ENOMEM;
  }
  /* Takes o, also when it fails. */
  return JS_SetPropertyUint32(ctx, d->items, d->count++, o) < 0 ? ENOMEM : 0;
}

/*
 * Read a dump into d->items (a new array), once more if a concurrent change interrupted it (a few
 * times at most). o says how it ended.
 */
static void read_dump(Dump *d, int fd, Request *r, OnMessage on, Outcome *o) {
  for (int attempt = 0; attempt < 3; attempt++) {
    JS_FreeValue(d->ctx, d->items);
    d->items = JS_NewArray(d->ctx);
    d->count = 0;
    *o = (Outcome){0};
    if (JS_IsException(d->items)) {
      o->err = ENOMEM;
      return;
    }
    Request copy = *r; /* nl_talk_on sets its sequence number and flags */
    if (nl_talk_on(fd, &copy, on, d, o) != EAGAIN) return;
  }
}

static void dump(Dump *d, Outcome *o) {
  static const int types[] = {RTM_GETRULE, RTM_GETROUTE, RTM_GETADDR};
  static const size_t sizes[] = {sizeof(struct fib_rule_hdr), sizeof(struct rtmsg), sizeof(struct ifaddrmsg)};
  Request r = {.n = {.nlmsg_len = NLMSG_LENGTH(sizes[d->kind]), .nlmsg_type = (uint16_t)types[d->kind], .nlmsg_flags = NLM_F_DUMP}};
  /* The family is the first byte of each of the three headers. */
  r.m.rule.family = (unsigned char)d->af;
  read_dump(d, nl_fd, &r, on_item, o);
}

/* ---------- the host functions ---------- */

/* A failure's fields on v (an object or an Error): errno, code, text, extack, where. */
static JSValue with_outcome(JSContext *ctx, JSValue v, const Outcome *o) {
  static const char *const where[] = {"kernel", "namespace", "socket", "device"};
  JS_SetPropertyStr(ctx, v, "errno", JS_NewInt32(ctx, o->err));
  JS_SetPropertyStr(ctx, v, "code", JS_NewString(ctx, errno_code(o->err)));
  JS_SetPropertyStr(ctx, v, "text", JS_NewString(ctx, errno_text(o->err)));
  JS_SetPropertyStr(ctx, v, "extack", o->extack[0] ? JS_NewString(ctx, o->extack) : JS_NULL);
  JS_SetPropertyStr(ctx, v, "where", JS_NewString(ctx, where[o->where]));
  return v;
}

/* The namespace argument: -1 for ours (null), else a namespace's fd; *bad set when it is neither. */
static int ns_arg(JSContext *ctx, JSValueConst v, int *bad) {
  *bad = 0;
  if (JS_IsNull(v) || JS_IsUndefined(v)) return -1;
  int fd = -1;
  if (!JS_IsNumber(v) || JS_ToInt32(ctx, &fd, v) || fd < 0) *bad = 1;
  return fd;
}

/* A failure as an Error: message "<what>: <strerror>[: <extack>]", and its fields (with_outcome). */
static JSValue failure_error(JSContext *ctx, const Outcome *o, const char *what) {
  JSValue e = JS_NewError(ctx);
  char msg[400];
  snprintf(msg, sizeof msg, "%s: %s%s%s", what, errno_text(o->err), o->extack[0] ? ": " : "", o->extack);
  JS_SetPropertyStr(ctx, e, "message", JS_NewString(ctx, msg));
  return with_outcome(ctx, e, o);
}

JSValue h_netlink_change(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  if (argc < 8) return JS_ThrowTypeError(ctx, "netlinkChange: 8 arguments expected");
  int op, kind, family, prefix, bad;
  uint32_t mark, table;
  if (JS_ToInt32(ctx, &op, argv[1]) || JS_ToInt32(ctx, &kind, argv[2]) || JS_ToInt32(ctx, &family, argv[3]) || JS_ToUint32(ctx, &mark, argv[4]) ||
      JS_ToUint32(ctx, &table, argv[5]) || JS_ToInt32(ctx, &prefix, argv[7]))
    return JS_EXCEPTION;
  if ((op != 0 && op != 1) || kind < 0 || kind > 2 || (family != 4 && family != 6)) return JS_ThrowRangeError(ctx, "netlinkChange: bad arguments");
  int ns = ns_arg(ctx, argv[0], &bad);
  if (bad) return JS_ThrowRangeError(ctx, "netlinkChange: the namespace must be an open descriptor or null");
  const char *address = kind == 2 ? JS_ToCString(ctx, argv[6]) : NULL;
  if (kind == 2 && !address) return JS_EXCEPTION;
  Outcome o = {0};
  if (nl_socket(ns, &o) == 0) change(op, kind, family, mark, table, address, prefix, &o);
  if (address) JS_FreeCString(ctx, address);
  return o.err ? with_outcome(ctx, JS_NewObject(ctx), &o) : JS_NULL;
}

JSValue h_netlink_dump(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  if (argc < 3) return JS_ThrowTypeError(ctx, "netlinkDump: 3 arguments expected");
  int kind, family, bad;
  if (JS_ToInt32(ctx, &kind, argv[1]) || JS_ToInt32(ctx, &family, argv[2])) return JS_EXCEPTION;
  if (kind < 0 || kind > 2 || (family != 4 && family != 6)) return JS_ThrowRangeError(ctx, "netlinkDump: bad arguments");
  int ns = ns_arg(ctx, argv[0], &bad);
  if (bad) return JS_ThrowRangeError(ctx, "netlinkDump: the namespace must be an open descriptor or null");
  Outcome o = {0};
  Dump d = {ctx, JS_UNDEFINED, 0, kind, family == 6 ? AF_INET6 : AF_INET};
  /* Without a device named lo nothing can be on it (lo 0); adding to it then fails as ip does. */
  if (nl_socket(ns, &o) == 0 && (loopback(&o) == 0 || o.where == AT_DEVICE)) dump(&d, &o);
  if (o.err) {
    JS_FreeValue(ctx, d.items);
    return JS_Throw(ctx, failure_error(ctx, &o, "reading the routing state over netlink"));
  }
  JSValue out = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, out, "lo", JS_NewInt32(ctx, nl_lo));
  JS_SetPropertyStr(ctx, out, "items", d.items);
  return out;
}

/* ---------- nf_tables: which tables a family has ---------- */

static int nf_fd = -1;
static unsigned long long nf_ns;

/* The netfilter socket for namespace ns, as nl_socket's. */
static int nf_socket(int ns, Outcome *o) {
  return nl_open(ns, NETLINK_NETFILTER, &nf_fd, &nf_ns, o);
}

static int on_table(const struct nlmsghdr *h, void *arg) {
  Dump *d = arg;
  if (h->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE) || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nfgenmsg))) return 0;
  const struct nlattr *tb[NFTA_TABLE_MAX + 1];
  attrs(h, sizeof(struct nfgenmsg), tb, NFTA_TABLE_MAX);
  const struct nlattr *name = tb[NFTA_TABLE_NAME];
  if (!name || name->nla_len <= NLA_HDRLEN) return 0;
  size_t n = strnlen((const char *)name + NLA_HDRLEN, name->nla_len - NLA_HDRLEN);
  JSValue s = JS_NewStringLen(d->ctx, (const char *)name + NLA_HDRLEN, n);
  if (JS_IsException(s)) return ENOMEM;
  return JS_SetPropertyUint32(d->ctx, d->items, d->count++, s) < 0 ? ENOMEM : 0;
}

/*
 * netlinkTables(ns, family): the names of the nf_tables tables of family ip (4) or ip6 (6) in
 * namespace ns (the iptables-nft backend's tables among them); throws an Error with .code.
 */
JSValue h_netlink_tables(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  if (argc < 2) return JS_ThrowTypeError(ctx, "netlinkTables: 2 arguments expected");
  int family, bad;
  if (JS_ToInt32(ctx, &family, argv[1])) return JS_EXCEPTION;
  if (family != 4 && family != 6) return JS_ThrowRangeError(ctx, "netlinkTables: bad family");
  int ns = ns_arg(ctx, argv[0], &bad);
  if (bad) return JS_ThrowRangeError(ctx, "netlinkTables: the namespace must be an open descriptor or null");
  Outcome o = {0};
  Dump d = {ctx, JS_UNDEFINED, 0, 0, 0};
  if (nf_socket(ns, &o) == 0) {
    Request r = {.n = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg)), .nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, .nlmsg_flags = NLM_F_DUMP}};
    r.m.nf.nfgen_family = family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
    r.m.nf.version = NFNETLINK_V0;
    read_dump(&d, nf_fd, &r, on_table, &o);
  }
  if (o.err) {
    JS_FreeValue(ctx, d.items);
    return JS_Throw(ctx, failure_error(ctx, &o, "listing the nf_tables tables over netlink"));
  }
  return d.items;
}
