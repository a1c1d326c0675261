/*
 * The init container's runtime: the QuickJS engine, our CLI's bytecode, and the handful of
 * operating-system calls the CLI needs, as the global `__host` (see src/platform/host.ts for its
 * types and src/platform/quickjs/ for the JavaScript side).
 *
 * Nothing here reads the environment to decide what runs: it is handed to the program as data
 * (`env`). Built with -DTRACE_RUNTIME (dist/entrypoint-trace/istio-iptables, for tests and
 * measurements), the runtime prints its steps with their times on stderr.
 *
 * Why this exists: a pod's start waits for the init container, and the kernel work it does is a
 * few milliseconds. A JavaScript runtime such as Bun or Node needs 4 to 50 ms just to start; this
 * one starts in well under a millisecond because the engine is small and the program arrives as
 * precompiled bytecode. Everything here is plumbing; all the logic is the TypeScript in src/.
 *
 *   argv, env                    the command line (without argv[0]) and the environment
 *   write(fd, text)              write all of text (UTF-8) to fd 1 or 2; false if it failed (the
 *                                process then exits 1, whatever the program returns)
 *   readFile(path, ns)           the file as text ("/dev/stdin": fd 0, whatever it is); throws
 *                                an Error with .code (ENOENT, ...); with ns (a namespace's fd from
 *                                openNamespace), opened inside that network namespace (/proc/net,
 *                                /proc/sys/net show it)
 *   exists(path)                 whether path exists
 *   interfaces()                 [{ name, family: 'IPv4' | 'IPv6', address, internal }]
 *   spawn(argv, input, env, timeoutMs, done)
 *                                start argv[0] (PATH lookup) with input on stdin (/dev/null when
 *                                input is null; when undefined, stdin waits for feed(pid, input),
 *                                and is closed empty if nothing can feed it any more: every
 *                                command left is waiting and no JavaScript is pending) and env
 *                                (an array of NAME=value, its whole environment; null for none:
 *                                nothing of ours is passed on by itself); done(exitCode, signal,
 *                                stdout, stderr, spawnError, timedOut) is called from the event
 *                                loop once it exited. Many
 *                                may run at once. One still running after timeoutMs gets SIGTERM.
 *   spawn(..., done, ns)         the same, the child inside network namespace ns (a
 *                                namespace's fd from openNamespace; undefined: ours), entered in
 *                                the forked child before exec
 *   feed(pid, input, more)       stdin for a waiting command, written as soon as the pipe takes
 *                                it; with more, the command keeps waiting for the rest (further
 *                                feeds), else its stdin is closed once written. false if no such
 *                                command is waiting
 *   setExitCode(n)               the process's exit status when the event loop is done
 *   selfPath()                   this executable's path (/proc/self/exe)
 *   openNamespace, lockAttempt, lockKeep, lockRelease
 *                                the namespace a run is pointed at, and its run lock: native/netns.c
 *   load(name)                   run the embedded script of code only some runs need: "extra",
 *                                "parser" (yargs: --help, errors) or "trace"; once each
 *   socket, listen, accept, ...  TCP sockets for the validation probe: native/probe.c
 *   netlinkChange, netlinkDump, netlinkTables
 *                                routing, addresses and nf_tables tables over netlink:
 *                                native/netlink.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "quickjs.h"
#include "probe.h"
#include "netns.h"
#include "names.h"

extern char **environ;

/*
 * The program, compiled to QuickJS bytecode at build time (bytecode.S): a small prelude, run
 * first (it starts the commands the run will need, see src/apply/early.ts), then the CLI, and
 * the code only some runs need, run when the CLI first asks for it (load("extra")).
 */
extern const uint8_t prelude_bytecode[];
extern const uint8_t prelude_bytecode_end[];
extern const uint8_t app_bytecode[];
extern const uint8_t app_bytecode_end[];
extern const uint8_t extra_bytecode[];
extern const uint8_t extra_bytecode_end[];
extern const uint8_t parser_bytecode[];
extern const uint8_t parser_bytecode_end[];
extern const uint8_t trace_bytecode[];
extern const uint8_t trace_bytecode_end[];

static int exit_code = 0;
/* A write to stdout or stderr failed: the exit status is not 0, whatever the program set. */
static int write_failed = 0; /* 1: stdout, 2: stderr */
static int write_errno = 0;

/* Built with -DTRACE_RUNTIME: the runtime's steps with their times on stderr. */
#ifdef TRACE_RUNTIME
static const int trace_runtime = 1;
#else
static const int trace_runtime = 0;
#endif
static double start_ms = 0;

/* ---------- small helpers ---------- */

typedef struct {
  char *data;
  size_t len, cap;
} Buf;

static int buf_add(Buf *b, const char *p, size_t n) {
  if (n == 0) return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void trace(const char *what, long arg) {
  if (trace_runtime) fprintf(stderr, "runtime\t%7.3f ms  %s %ld\n", now_ms() - start_ms, what, arg);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static JSValue throw_errno(JSContext *ctx, int err, const char *what, const char *path) {
  JSValue e = JS_NewError(ctx);
  char msg[PATH_MAX + 128];
  snprintf(msg, sizeof msg, "%s, %s '%s'", errno_text(err), what, path);
  JS_SetPropertyStr(ctx, e, "message", JS_NewString(ctx, msg));
  JS_SetPropertyStr(ctx, e, "code", JS_NewString(ctx, errno_code(err)));
  JS_SetPropertyStr(ctx, e, "errno", JS_NewInt32(ctx, -err));
  return JS_Throw(ctx, e);
}

/* A JS array of strings to a NULL-terminated C array (strings owned by the caller's free_strv). */
static char **to_strv(JSContext *ctx, JSValueConst arr) {
  JSValue lenv = JS_GetPropertyStr(ctx, arr, "length");
  uint32_t len = 0;
  JS_ToUint32(ctx, &len, lenv);
  JS_FreeValue(ctx, lenv);
  char **v = len < UINT32_MAX ? calloc((size_t)len + 1, sizeof(char *)) : NULL;
  if (!v) return NULL;
  for (uint32_t i = 0; i < len; i++) {
    JSValue s = JS_GetPropertyUint32(ctx, arr, i);
    const char *c = JS_ToCString(ctx, s);
    JS_FreeValue(ctx, s);
    v[i] = c ? strdup(c) : NULL;
    if (c) JS_FreeCString(ctx, c);
    if (!v[i]) {
      /* A string that could not be read or copied: the whole array fails (never a shorter argv). */
      for (uint32_t k = 0; k < i; k++) free(v[k]);
      free(v);
      return NULL;
    }
  }
  return v;
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* ---------- memory ---------- */

/*
 * A run lasts milliseconds and allocates a megabyte or two, so the engine allocates from one
 * arena and frees nothing back to it (a quarter of all instructions went to malloc and free):
 * -23% instructions per run. The arena is reserved, not committed (only pages used cost memory),
 * and small: past its end (very large configurations) allocations come from the C allocator and
 * are freed as usual, so at most its 16 MB are never reused.
 */
#define ARENA_SIZE ((size_t)16 << 20)

typedef struct {
  size_t size;    /* bytes asked for */
  size_t in_heap; /* 1: from malloc, 0: from the arena */
} Block;

static char *arena_start, *arena_next, *arena_end, *arena_last;

static Block *block_of(const void *ptr) {
  return (Block *)ptr - 1;
}

/* Largest request the arena's size arithmetic (header, rounding to 16) cannot overflow. */
#define ARENA_MAX_REQUEST (SIZE_MAX - sizeof(Block) - 15)

static void *arena_malloc(JSMallocState *s, size_t size) {
  if (size > ARENA_MAX_REQUEST) return NULL;
  size_t need = (sizeof(Block) + size + 15) & ~(size_t)15;
  Block *b;
  if (arena_next != NULL && (size_t)(arena_end - arena_next) >= need) {
    b = (Block *)arena_next;
    arena_last = arena_next;
    arena_next += need;
    b->in_heap = 0;
  } else {
    b = malloc(sizeof(Block) + size);
    if (!b) return NULL;
    b->in_heap = 1;
  }
  b->size = size;
  s->malloc_count++;
  s->malloc_size += size;
  return b + 1;
}

static void arena_free(JSMallocState *s, void *ptr) {
  if (!ptr) return;
  Block *b = block_of(ptr);
  s->malloc_count--;
  s->malloc_size -= b->size;
  if (b->in_heap) free(b);
}

static void *arena_realloc(JSMallocState *s, void *ptr, size_t size) {
  if (!ptr) return size ? arena_malloc(s, size) : NULL;
  Block *b = block_of(ptr);
  if (size == 0) {
    arena_free(s, ptr);
    return NULL;
  }
  if (size <= b->size) {
    s->malloc_size -= b->size - size;
    b->size = size;
    return ptr;
  }
  if (size > ARENA_MAX_REQUEST) return NULL;
  /* The arena's last block grows in place (strings and arrays being built). */
  size_t need = (sizeof(Block) + size + 15) & ~(size_t)15;
  if (!b->in_heap && (char *)b == arena_last && (size_t)(arena_end - (char *)b) >= need) {
    arena_next = (char *)b + need;
    s->malloc_size += size - b->size;
    b->size = size;
    return ptr;
  }
  void *n = arena_malloc(s, size);
  if (!n) return NULL;
  memcpy(n, ptr, b->size);
  arena_free(s, ptr);
  return n;
}

static size_t arena_usable_size(const void *ptr) {
  return ptr ? block_of(ptr)->size : 0;
}

static const JSMallocFunctions arena_funcs = {arena_malloc, arena_free, arena_realloc, arena_usable_size};

#define HUGE_PAGE ((size_t)2 << 20)
/* Small pages before the first huge page: the runtime's set-up and the prelude fit in them. */
#define ARENA_LEAD ((size_t)512 << 10)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Fault the arena's first pages in on another core (the small pages of the lead, then the first
 * huge page, zeroing 2 MB) while the main thread sets up the runtime and runs the prelude from the
 * start of the lead; that core is idle then (the restore starts later). MADV_POPULATE_WRITE maps
 * pages without touching their contents, so a page the main thread already wrote is left as it is.
 * Without it (Linux < 5.14) each thread faults its own pages, as without this thread.
 */
static void *prefault(void *start) {
  madvise(start, ARENA_LEAD + HUGE_PAGE, MADV_POPULATE_WRITE);
  return NULL;
}

static JSRuntime *new_runtime(void) {
#ifdef HOST_NO_ARENA
  /* The sanitizer build (npm run build:entrypoint -- --sanitize): every allocation from the C
     allocator, so AddressSanitizer sees each block's bounds and lifetime. */
  return JS_NewRuntime();
#endif
  /* Backed by transparent huge pages past the lead where the kernel allows it (madvise mode
     included): 2 MB in one fault instead of 512 (a fault costs ~1 us in a VM). Where no huge page
     is free, the kernel falls back to small pages. */
  char *raw = mmap(NULL, ARENA_SIZE + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw != MAP_FAILED) {
    char *huge = (char *)(((uintptr_t)raw + ARENA_LEAD + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    arena_start = arena_next = huge - ARENA_LEAD;
    arena_end = arena_start + ARENA_SIZE;
    madvise(huge, (size_t)(arena_end - huge), MADV_HUGEPAGE);
    /* A forked child (which only sets up its stdio and execs) gets the arena empty instead of
       shared copy-on-write, so our writes after a fork do not fault page by page. */
    madvise(arena_start, ARENA_SIZE, MADV_WIPEONFORK);
    pthread_t t;
    if (pthread_create(&t, NULL, prefault, arena_start) == 0) pthread_detach(t);
  }
  return JS_NewRuntime2(&arena_funcs, NULL);
}

/* ---------- file system, identity, addresses ---------- */

static JSValue h_write(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int fd;
  size_t len;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  const char *s = JS_ToCStringLen(ctx, &len, argv[1]);
  if (!s) return JS_EXCEPTION;
  int failed = write_all(fd, s, len);
  int err = errno;
  JS_FreeCString(ctx, s);
  if (failed && !write_failed) {
    /* Output that cannot be written (a full disk, a reader gone) fails the run: the exit status
       is 1 whatever the program returns. Not an exception: a log line lost must not stop an apply
       half-way (the run finishes, or rolls back, as it would have). */
    write_failed = fd == 1 ? 1 : 2;
    write_errno = err;
  }
  return JS_NewBool(ctx, !failed);
}

static JSValue h_read_file(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int ns = -1;
  if (argc > 1 && !JS_IsUndefined(argv[1]) && !JS_IsNull(argv[1]) && JS_ToInt32(ctx, &ns, argv[1])) return JS_EXCEPTION;
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  int err = 0;
  /* /dev/stdin is read from fd 0 itself: reopening it fails when stdin is a socket. */
  int fd = strcmp(path, "/dev/stdin") == 0 ? fcntl(0, F_DUPFD_CLOEXEC, 3) : ns >= 0 ? netns_open(ns, path, &err) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    JSValue r = throw_errno(ctx, err ? err : errno, fd == -1 && ns >= 0 ? "enter the network namespace to open" : "open", path);
    JS_FreeCString(ctx, path);
    return r;
  }
  Buf b = {0};
  char chunk[16384];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      free(b.data);
      JSValue r = throw_errno(ctx, err, "read", path);
      JS_FreeCString(ctx, path);
      return r;
    }
    if (n == 0) break;
    if (buf_add(&b, chunk, (size_t)n)) {
      close(fd);
      free(b.data);
      JS_FreeCString(ctx, path);
      return JS_ThrowOutOfMemory(ctx);
    }
  }
  close(fd);
  JS_FreeCString(ctx, path);
  JSValue s = JS_NewStringLen(ctx, b.data ? b.data : "", b.len);
  free(b.data);
  return s;
}

static JSValue h_exists(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  struct stat st;
  int ok = stat(path, &st) == 0;
  JS_FreeCString(ctx, path);
  return JS_NewBool(ctx, ok);
}

static JSValue h_interfaces(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  struct ifaddrs *list;
  /* A listing that fails (a file-descriptor limit, no memory) is an error, never "no addresses":
     that would quietly plan for IPv4 only. */
  if (getifaddrs(&list) != 0) return throw_errno(ctx, errno, "getifaddrs", "interfaces");
  JSValue arr = JS_NewArray(ctx);
  uint32_t i = 0;
  for (struct ifaddrs *a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr) continue;
    int fam = a->ifa_addr->sa_family;
    if (fam != AF_INET && fam != AF_INET6) continue;
    char text[INET6_ADDRSTRLEN];
    const void *src = fam == AF_INET ? (const void *)&((struct sockaddr_in *)a->ifa_addr)->sin_addr
                                     : (const void *)&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr;
    if (!inet_ntop(fam, src, text, sizeof text)) continue;
    JSValue o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "name", JS_NewString(ctx, a->ifa_name));
    JS_SetPropertyStr(ctx, o, "family", JS_NewString(ctx, fam == AF_INET ? "IPv4" : "IPv6"));
    JS_SetPropertyStr(ctx, o, "address", JS_NewString(ctx, text));
    JS_SetPropertyStr(ctx, o, "internal", JS_NewBool(ctx, (a->ifa_flags & IFF_LOOPBACK) != 0));
    JS_SetPropertyUint32(ctx, arr, i++, o);
  }
  freeifaddrs(list);
  return arr;
}

static JSValue h_set_exit_code(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  if (JS_ToInt32(ctx, &exit_code, argv[0])) return JS_EXCEPTION;
  return JS_UNDEFINED;
}

static JSValue h_self_path(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  char p[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", p, sizeof p - 1);
  if (n < 0) return throw_errno(ctx, errno, "readlink", "/proc/self/exe");
  return JS_NewStringLen(ctx, p, (size_t)n);
}

/* The wall clock in microseconds since the epoch (log times; the runtime has no Date). */
static JSValue h_wall_clock(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return JS_NewFloat64(ctx, (double)t.tv_sec * 1e6 + (double)(t.tv_nsec / 1000));
}

/* ---------- child processes and the event loop ---------- */

typedef struct Job {
  struct Job *next;
  pid_t pid;
  int in_fd, out_fd, err_fd; /* -1 once closed */
  int status_fd;             /* the child's exec status: an errno, or end of file once it exec'd */
  int exec_errno;
  Buf input;                 /* stdin to write, input_off bytes of it written */
  size_t input_off;
  Buf out, err;
  double deadline;
  int timed_out;
  int waiting; /* stdin open, more input to come from feed() */
  int pidfd;       /* readable once the child exited (-1: none; then it is polled for) */
  int reaped;      /* waited for; status holds its status */
  int status;
  int lost_output; /* out of memory keeping its output: reported as a failure */
  double kill_at;  /* after the timeout's SIGTERM: when SIGKILL follows */
  double close_at; /* when its pipes are closed even if something still holds them open */
  JSValue done;
} Job;

/* A command still running KILL_GRACE_MS after its SIGTERM gets SIGKILL; pipes still open
   PIPE_GRACE_MS after it exited (held by a process it left behind) or after its SIGKILL are
   closed: every wait is bounded (the same bounds as src/apply/commands.ts). */
#define KILL_GRACE_MS 2000
#define PIPE_GRACE_MS 1000

static Job *jobs = NULL;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Write what the pipe takes now (it holds 64 KB): the command can start reading while we go on,
   instead of when the event loop next runs. Closes stdin once all is written. */
static void pump_input(Job *j) {
  while (j->in_fd >= 0 && j->input_off < j->input.len) {
    ssize_t w = write(j->in_fd, j->input.data + j->input_off, j->input.len - j->input_off);
    if (w > 0) {
      j->input_off += (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      if (w < 0 && errno != EAGAIN) close_fd(&j->in_fd); /* the reader is gone */
      return;
    }
  }
  if (j->input_off == j->input.len && !j->waiting) close_fd(&j->in_fd);
}


static JSValue h_spawn(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int has_env = !(JS_IsNull(argv[2]) || JS_IsUndefined(argv[2]));
  char **args = to_strv(ctx, argv[0]);
  char **envp = has_env ? to_strv(ctx, argv[2]) : NULL;
  double timeout_ms = 0;
  int waiting = JS_IsUndefined(argv[1]);
  /* Inside another network namespace: its fd (close-on-exec), entered by the child before exec. */
  int netns = -1;
  if (argc > 5 && !JS_IsUndefined(argv[5]) && !JS_IsNull(argv[5]) && (JS_ToInt32(ctx, &netns, argv[5]) || netns < 0)) {
    free_strv(args);
    free_strv(envp);
    return JS_ThrowRangeError(ctx, "spawn: the namespace must be an open descriptor");
  }
  int has_input = !JS_IsNull(argv[1]);
  const char *input = NULL;
  size_t input_len = 0;
  if (has_input && !waiting) input = JS_ToCStringLen(ctx, &input_len, argv[1]);
  Job *j = calloc(1, sizeof *j);
  if (!args || (has_env && !envp) || (has_input && !waiting && !input) || !j || JS_ToFloat64(ctx, &timeout_ms, argv[3]) ||
      (input && buf_add(&j->input, input, input_len))) {
    free_strv(args);
    free_strv(envp);
    if (input) JS_FreeCString(ctx, input);
    if (j) free(j->input.data);
    free(j);
    return JS_ThrowTypeError(ctx, "spawn: its arguments could not be read or copied (out of memory?)");
  }
  if (input) JS_FreeCString(ctx, input);
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
  int rc = 0;
  if ((has_input ? pipe2(in, O_CLOEXEC) : 0) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(st, O_CLOEXEC)) rc = errno;
  int devnull = has_input || rc ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
  /* fork, not posix_spawn: posix_spawn waits until the child has exec'd (~0.7 ms here, on the
     critical path); after fork we go on at once, and an exec failure arrives on the status pipe. */
  pid_t pid = rc ? -1 : fork();
  if (pid == 0) {
    dup2(has_input ? in[0] : devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    signal(SIGPIPE, SIG_DFL);
    if (netns >= 0 && setns(netns, CLONE_NEWNET) < 0) {
      int e = errno;
      if (write(st[1], &e, sizeof e) < 0) _exit(127);
      _exit(127);
    }
    /* The environment given, and nothing else (none when none is given): no variable of ours
       reaches a child by default (apply/commands.ts CHILD_ENV is what the program passes on). */
    char *none[] = {NULL};
    execvpe(args[0] ? args[0] : "", args, envp ? envp : none);
    int e = errno;
    if (write(st[1], &e, sizeof e) < 0) _exit(127);
    _exit(127);
  }
  if (pid < 0 && !rc) rc = errno;
  if (devnull >= 0) close(devnull);
  if (!rc) {
    j->pid = pid;
    j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    j->in_fd = in[1];
    j->out_fd = out[0];
    j->err_fd = err[0];
    j->status_fd = st[0];
    close(out[1]);
    close(err[1]);
    close(st[1]);
    if (waiting) {
      close(in[0]);
      j->waiting = 1;
      fcntl(j->in_fd, F_SETFL, O_NONBLOCK);
    } else if (has_input) {
      close(in[0]);
      fcntl(j->in_fd, F_SETFL, O_NONBLOCK);
      pump_input(j);
    }
    trace(waiting ? "started (stdin waits), pid" : "started, pid", pid);
    j->deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    j->done = JS_DupValue(ctx, argv[4]);
    j->next = jobs;
    jobs = j;
    free_strv(args);
    free_strv(envp);
    return JS_NewInt32(ctx, pid);
  }
  /* Could not start: report through the callback, as a finished command would. */
  free(j->input.data);
  free(j);
  for (int k = 0; k < 2; k++) {
    if (in[k] >= 0) close(in[k]);
    if (out[k] >= 0) close(out[k]);
    if (err[k] >= 0) close(err[k]);
    if (st[k] >= 0) close(st[k]);
  }
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", args[0] ? args[0] : "", errno_text(rc));
  JSValue cb_args[6] = {JS_NewInt32(ctx, -1), JS_NULL, JS_NewString(ctx, ""), JS_NewString(ctx, msg),
                        JS_NewString(ctx, errno_code(rc)), JS_FALSE};
  JSValue r = JS_Call(ctx, argv[4], JS_UNDEFINED, 6, cb_args);
  for (int k = 0; k < 6; k++) JS_FreeValue(ctx, cb_args[k]);
  free_strv(args);
  free_strv(envp);
  if (JS_IsException(r)) return r;
  JS_FreeValue(ctx, r);
  return JS_NewInt32(ctx, -1);
}

/* Give a waiting command (more of) its stdin; without more, its stdin closes once written. */
static int feed(Job *j, const char *s, size_t len, int more) {
  if (!j->waiting) return 0;
  if (!more) trace(j->input.len + len ? "stdin fed, pid" : "stdin closed empty, pid", j->pid);
  if (buf_add(&j->input, s, len)) return 0;
  j->waiting = more;
  pump_input(j);
  return 1;
}

static JSValue h_feed(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  int pid;
  size_t len;
  if (JS_ToInt32(ctx, &pid, argv[0])) return JS_EXCEPTION;
  const char *s = JS_ToCStringLen(ctx, &len, argv[1]);
  if (!s) return JS_EXCEPTION;
  int more = argc > 2 && JS_ToBool(ctx, argv[2]) == 1;
  int ok = 0;
  for (Job *j = jobs; j; j = j->next) {
    if (j->pid == pid) ok = feed(j, s, len, more);
  }
  JS_FreeCString(ctx, s);
  return JS_NewBool(ctx, ok);
}

static void report_exception(JSContext *ctx) {
  JSValue e = JS_GetException(ctx);
  const char *s = JS_ToCString(ctx, e);
  fprintf(stderr, "istio-iptables: internal error: %s\n", s ? s : "(unknown)");
  if (s) JS_FreeCString(ctx, s);
  if (JS_IsError(ctx, e)) {
    JSValue st = JS_GetPropertyStr(ctx, e, "stack");
    const char *t = JS_ToCString(ctx, st);
    if (t) fprintf(stderr, "%s\n", t), JS_FreeCString(ctx, t);
    JS_FreeValue(ctx, st);
  }
  JS_FreeValue(ctx, e);
  exit_code = 1;
}

/* Reads what is there; returns 1 at end of file (or error), then the fd is closed. */
static int drain(int *fd, Buf *b) {
  char chunk[16384];
  for (;;) {
    ssize_t n = read(*fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) {
      if (buf_add(b, chunk, (size_t)n)) return -1;
      if ((size_t)n == sizeof chunk) continue;
      return 0;
    }
    close_fd(fd);
    return 1;
  }
}

static void finish(JSContext *ctx, Job *j) {
  int status = j->status;
  int code = WIFEXITED(status) && !j->lost_output ? WEXITSTATUS(status) : -1;
  if (j->lost_output) buf_add(&j->err, "out of memory reading its output", 32);
  trace("exited, pid", j->pid);
  const char *sig = WIFSIGNALED(status) ? signal_name(WTERMSIG(status)) : NULL;
  char signame[32] = "";
  if (sig) snprintf(signame, sizeof signame, "SIG%s", sig);
  if (j->exec_errno) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot run it: %s", errno_text(j->exec_errno));
    buf_add(&j->err, msg, strlen(msg));
  }
  const char *spawn_error = j->exec_errno ? errno_name(j->exec_errno) : NULL;
  JSValue args[6] = {JS_NewInt32(ctx, j->exec_errno ? -1 : code), sig ? JS_NewString(ctx, signame) : JS_NULL,
                     JS_NewStringLen(ctx, j->out.data ? j->out.data : "", j->out.len),
                     JS_NewStringLen(ctx, j->err.data ? j->err.data : "", j->err.len),
                     spawn_error ? JS_NewString(ctx, spawn_error) : JS_NULL, JS_NewBool(ctx, j->timed_out)};
  JSValue r = JS_Call(ctx, j->done, JS_UNDEFINED, 6, args);
  if (JS_IsException(r)) report_exception(ctx);
  JS_FreeValue(ctx, r);
  for (int k = 0; k < 6; k++) JS_FreeValue(ctx, args[k]);
  JS_FreeValue(ctx, j->done);
  free(j->out.data);
  free(j->err.data);
  free(j->input.data);
  if (j->pidfd >= 0) close(j->pidfd);
  free(j);
}

/* Collect the child's status if it has exited (never blocks). */
static void reap(Job *j) {
  if (j->reaped) return;
  pid_t r;
  while ((r = waitpid(j->pid, &j->status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r == j->pid || (r < 0 && errno == ECHILD)) {
    if (r < 0) j->status = 0x7f00; /* lost: reported as exit 127 */
    j->reaped = 1;
    close_fd(&j->pidfd);
    /* Its pipes may be held by a process it left behind: closed after a grace period. */
    if (j->out_fd >= 0 || j->err_fd >= 0 || j->status_fd >= 0) j->close_at = now_ms() + PIPE_GRACE_MS;
  }
}

/*
 * Promises rejected with no handler yet. One still unhandled when the event loop ends fails the
 * run (exit 1), as Node's default does: a rejection nobody awaited must not exit 0.
 */
typedef struct Rejection {
  struct Rejection *next;
  JSValue promise, reason;
} Rejection;
static Rejection *rejections = NULL;

static void track_rejection(JSContext *ctx, JSValueConst promise, JSValueConst reason, JS_BOOL is_handled, void *opaque) {
  if (is_handled) {
    for (Rejection **pp = &rejections; *pp; pp = &(*pp)->next) {
      if (JS_VALUE_GET_PTR((*pp)->promise) == JS_VALUE_GET_PTR(promise)) {
        Rejection *r = *pp;
        *pp = r->next;
        JS_FreeValue(ctx, r->promise);
        JS_FreeValue(ctx, r->reason);
        free(r);
        return;
      }
    }
    return;
  }
  Rejection *r = malloc(sizeof *r);
  if (!r) {
    fprintf(stderr, "istio-iptables: internal error: out of memory tracking a rejected promise\n");
    exit_code = 1;
    return;
  }
  r->promise = JS_DupValue(ctx, promise);
  r->reason = JS_DupValue(ctx, reason);
  r->next = rejections;
  rejections = r;
}

/* After the event loop: any rejection still unhandled is reported and fails the run. */
static void report_rejections(JSContext *ctx) {
  for (Rejection *r = rejections; r; r = r->next) {
    JS_Throw(ctx, JS_DupValue(ctx, r->reason));
    fprintf(stderr, "istio-iptables: unhandled promise rejection\n");
    report_exception(ctx);
  }
}

static void run_microtasks(JSRuntime *rt) {
  JSContext *c;
  for (;;) {
    int r = JS_ExecutePendingJob(rt, &c);
    if (r == 0) break;
    if (r < 0) report_exception(c);
  }
}

static int pipes_closed(const Job *j) {
  return j->out_fd < 0 && j->err_fd < 0 && j->status_fd < 0;
}

static void earliest(double *next, double t) {
  if (t > 0 && (*next == 0 || t < *next)) *next = t;
}

static void event_loop(JSRuntime *rt, JSContext *ctx) {
  for (;;) {
    run_microtasks(rt);
    if (!jobs && !probe_pending()) break;
    /* Only JavaScript feeds a waiting command, and it runs only when a command finishes: if every
       command left is waiting, nothing will feed them, so they get an empty stdin and end. */
    int all_waiting = 1;
    for (Job *j = jobs; j; j = j->next) all_waiting &= j->waiting;
    if (all_waiting && !probe_pending()) {
      for (Job *j = jobs; j; j = j->next) feed(j, "", 0, 0);
    }
    struct pollfd fds[192];
    Job *owner[192];
    int nf = 0;
    double next = 0;
    for (Job *j = jobs; j && nf < 187; j = j->next) {
      if (j->in_fd >= 0 && j->input_off < j->input.len) fds[nf] = (struct pollfd){j->in_fd, POLLOUT, 0}, owner[nf++] = j;
      if (j->out_fd >= 0) fds[nf] = (struct pollfd){j->out_fd, POLLIN, 0}, owner[nf++] = j;
      if (j->err_fd >= 0) fds[nf] = (struct pollfd){j->err_fd, POLLIN, 0}, owner[nf++] = j;
      if (j->status_fd >= 0) fds[nf] = (struct pollfd){j->status_fd, POLLIN, 0}, owner[nf++] = j;
      if (!j->reaped && j->pidfd >= 0) fds[nf] = (struct pollfd){j->pidfd, POLLIN, 0}, owner[nf++] = j;
      if (!j->reaped && !j->timed_out) earliest(&next, j->deadline);
      if (!j->reaped && j->timed_out) earliest(&next, j->kill_at);
      earliest(&next, j->close_at);
      /* No pidfd (a kernel before 5.3): an exited child whose pipes closed is looked for often. */
      if (!j->reaped && j->pidfd < 0 && pipes_closed(j)) earliest(&next, now_ms() + 1);
    }
    int nj = nf; /* the jobs' fds; then the probe's sockets; then the run lock's */
    nf += probe_poll_fill(fds + nf, 190 - nf, &next);
    int np = nf;
    nf += netns_lock_poll_fill(fds + nf, 192 - nf);
    int wait = next > 0 ? (int)(next - now_ms()) + 1 : -1;
    if (next > 0 && wait < 0) wait = 0;
    int n = poll(fds, (nfds_t)nf, wait);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "istio-iptables: internal error: poll: %s\n", errno_text(errno));
      exit_code = 1;
      for (Job *j = jobs; j; j = j->next) kill(j->pid, SIGKILL);
      return;
    }
    for (int k = 0; k < nj && n > 0; k++) {
      if (!fds[k].revents) continue;
      Job *j = owner[k];
      int fd = fds[k].fd;
      if (fd == j->in_fd) {
        pump_input(j);
      } else if (fd == j->out_fd) {
        if (drain(&j->out_fd, &j->out) < 0) j->lost_output = 1, close_fd(&j->out_fd);
      } else if (fd == j->err_fd) {
        if (drain(&j->err_fd, &j->err) < 0) j->lost_output = 1, close_fd(&j->err_fd);
      } else if (fd == j->status_fd) {
        int e = 0;
        if (read(j->status_fd, &e, sizeof e) == (ssize_t)sizeof e) j->exec_errno = e;
        close_fd(&j->status_fd);
      } else if (fd == j->pidfd) {
        reap(j);
      }
    }
    probe_poll_done(ctx, fds + nj, n > 0 ? np - nj : 0, report_exception);
    if (n > 0) netns_lock_poll_done(fds + np, nf - np);
    double t = now_ms();
    for (Job *j = jobs; j; j = j->next) {
      if (!j->reaped && pipes_closed(j)) reap(j);
      if (!j->reaped && j->deadline > 0 && !j->timed_out && t >= j->deadline) {
        j->timed_out = 1;
        kill(j->pid, SIGTERM);
        j->kill_at = t + KILL_GRACE_MS;
      }
      if (!j->reaped && j->timed_out && j->kill_at > 0 && t >= j->kill_at) {
        kill(j->pid, SIGKILL);
        j->kill_at = 0;
        j->close_at = t + PIPE_GRACE_MS;
      }
      if (j->close_at > 0 && t >= j->close_at) {
        close_fd(&j->out_fd);
        close_fd(&j->err_fd);
        close_fd(&j->status_fd);
        close_fd(&j->in_fd);
        reap(j);
        if (!j->reaped) {
          /* Not even SIGKILL ended it (a process stuck in the kernel): reported as killed. */
          j->status = SIGKILL;
          j->reaped = 1;
        }
      }
    }
    /* Finished: output pipes at end of file and the child waited for. Unlink first, then call
       back (which may spawn). */
    Job **pp = &jobs;
    while (*pp) {
      Job *j = *pp;
      if (pipes_closed(j) && j->reaped) {
        *pp = j->next;
        close_fd(&j->in_fd);
        finish(ctx, j);
      } else {
        pp = &j->next;
      }
    }
  }
}

/* Read and run one embedded script: its result, or an exception. */
static JSValue eval_bytecode(JSContext *ctx, const uint8_t *start, const uint8_t *end) {
  JSValue fn = JS_ReadObject(ctx, start, (size_t)(end - start), JS_READ_OBJ_BYTECODE);
  if (JS_IsException(fn)) return fn;
  trace("bytecode read, bytes", (long)(end - start));
  /* The script's top-level function is kept, not freed once it has run: freeing it walks all of
     its bytecode (every module's top level, hoisted into it) to release the atoms it names, ~60 us
     between the prelude and the first restore's payload; the arena would not reuse the memory
     anyway, and the process ends with _exit. */
  JS_DupValue(ctx, fn);
  return JS_EvalFunction(ctx, fn);
}

static JSValue h_load(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv) {
  static const struct {
    const char *name;
    const uint8_t *start, *end;
  } scripts[] = {
      {"extra", extra_bytecode, extra_bytecode_end},
      {"parser", parser_bytecode, parser_bytecode_end},
      {"trace", trace_bytecode, trace_bytecode_end},
  };
  static int loaded[sizeof scripts / sizeof scripts[0]];
  const char *name = JS_ToCString(ctx, argv[0]);
  if (!name) return JS_EXCEPTION;
  int k = (int)(sizeof scripts / sizeof scripts[0]);
  while (--k >= 0 && strcmp(name, scripts[k].name) != 0) {
  }
  JS_FreeCString(ctx, name);
  if (k < 0) return JS_ThrowTypeError(ctx, "no embedded script by that name");
  if (loaded[k]) return JS_UNDEFINED;
  loaded[k] = 1;
  trace("loading script", k);
  JSValue r = eval_bytecode(ctx, scripts[k].start, scripts[k].end);
  if (JS_IsException(r)) return r;
  JS_FreeValue(ctx, r);
  trace("script evaluated", k);
  return JS_UNDEFINED;
}

/* ---------- start-up ---------- */

#ifdef CNI_PLUGIN
void cni_register(JSContext *ctx, JSValueConst host);
#endif

/* Routing over rtnetlink (native/netlink.c). */
JSValue h_netlink_change(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv);
JSValue h_netlink_dump(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv);
JSValue h_netlink_tables(JSContext *ctx, JSValueConst this, int argc, JSValueConst *argv);

static const JSCFunctionListEntry host_funcs[] = {
    JS_CFUNC_DEF("write", 2, h_write),
    JS_CFUNC_DEF("readFile", 2, h_read_file),
    JS_CFUNC_DEF("exists", 1, h_exists),
    JS_CFUNC_DEF("interfaces", 0, h_interfaces),
    JS_CFUNC_DEF("spawn", 6, h_spawn),
    JS_CFUNC_DEF("feed", 3, h_feed),
    JS_CFUNC_DEF("setExitCode", 1, h_set_exit_code),
    JS_CFUNC_DEF("selfPath", 0, h_self_path),
    JS_CFUNC_DEF("wallClock", 0, h_wall_clock),
    JS_CFUNC_DEF("load", 1, h_load),
    JS_CFUNC_DEF("netlinkChange", 8, h_netlink_change),
    JS_CFUNC_DEF("netlinkDump", 3, h_netlink_dump),
    JS_CFUNC_DEF("netlinkTables", 2, h_netlink_tables),
    JS_CFUNC_DEF("openNamespace", 1, h_open_namespace),
    JS_CFUNC_DEF("lockAttempt", 2, h_lock_attempt),
    JS_CFUNC_DEF("lockKeep", 0, h_lock_keep),
    JS_CFUNC_DEF("lockRelease", 0, h_lock_release),
};

static int run_bytecode(JSContext *ctx, const uint8_t *start, const uint8_t *end) {
  JSValue r = eval_bytecode(ctx, start, end);
  int failed = JS_IsException(r);
  if (failed) report_exception(ctx);
  JS_FreeValue(ctx, r);
  return failed ? -1 : 0;
}

int main(int argc, char **argv) {
  start_ms = now_ms();
  /* Started with stdin, stdout or stderr closed: put /dev/null there, so that no pipe or socket
     we open later takes fd 0-2 (a child would get it as its stdio, a write meant for stderr
     would go into it). Failing that, nothing runs. */
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    int n = open("/dev/null", O_RDWR);
    if (n != fd) _exit(1);
  }
  signal(SIGPIPE, SIG_IGN);
  JSRuntime *rt = new_runtime();
  if (!rt) {
    static const char msg[] = "istio-iptables: internal error: out of memory starting the runtime\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
  }
  JS_SetHostPromiseRejectionTracker(rt, track_rejection, NULL);
  /* A run lasts milliseconds: reference counting frees garbage as it goes, and the cycle
     collector, which walks every object, runs only past 64 MB instead of every 256 KB. */
  JS_SetGCThreshold(rt, (size_t)64 << 20);
  JSContext *ctx = JS_NewContextRaw(rt);
  if (!ctx) _exit(1);
  JS_AddIntrinsicBaseObjects(ctx);
  JS_AddIntrinsicRegExpCompiler(ctx);
  JS_AddIntrinsicRegExp(ctx);
  JS_AddIntrinsicJSON(ctx);
  JS_AddIntrinsicMapSet(ctx);
  JS_AddIntrinsicPromise(ctx);
  JS_AddIntrinsicStringNormalize(ctx); /* yargs's help layout (wrap-ansi) normalizes */
  /* Not eval: no JavaScript compiler at run time (eval() and new Function() throw); the program
     arrives compiled. Not Date, Proxy, typed arrays or ArrayBuffer: the program uses none of them,
     and typed arrays alone are a fifth of the context's set-up. */

  JSValue global = JS_GetGlobalObject(ctx);
  JSValue host = JS_NewObject(ctx);
  JS_SetPropertyFunctionList(ctx, host, host_funcs, sizeof host_funcs / sizeof host_funcs[0]);
  probe_register(ctx, host);
#ifdef CNI_PLUGIN
  /* The istio-cni plugin's build: its unix socket to the node agent (native/cni.c). */
  cni_register(ctx, host);
#endif
  JSValue args = JS_NewArray(ctx);
  for (int i = 1; i < argc; i++) JS_SetPropertyUint32(ctx, args, (uint32_t)(i - 1), JS_NewString(ctx, argv[i]));
  JS_SetPropertyStr(ctx, host, "argv", args);
  JSValue env = JS_NewObject(ctx);
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq) continue;
    char name[1024];
    size_t n = (size_t)(eq - *e);
    if (n >= sizeof name) continue;
    memcpy(name, *e, n);
    name[n] = 0;
    JS_SetPropertyStr(ctx, env, name, JS_NewString(ctx, eq + 1));
  }
  JS_SetPropertyStr(ctx, host, "env", env);
  JS_SetPropertyStr(ctx, global, "__host", host);
  JS_FreeValue(ctx, global);
  trace("context ready, arena KB", (long)((arena_next - arena_start) >> 10));

  int ok = run_bytecode(ctx, prelude_bytecode, prelude_bytecode_end) == 0;
  trace("prelude done, arena KB", (long)((arena_next - arena_start) >> 10));
  ok = ok && run_bytecode(ctx, app_bytecode, app_bytecode_end) == 0;
  trace("program evaluated, arena KB", (long)((arena_next - arena_start) >> 10));
  if (ok) {
    event_loop(rt, ctx);
    report_rejections(ctx);
    trace("event loop done, exit code", exit_code);
  } else {
    exit_code = 1;
  }
  if (write_failed) {
    if (write_failed == 1) fprintf(stderr, "istio-iptables: cannot write to stdout: %s\n", errno_text(write_errno));
    if (exit_code == 0) exit_code = 1;
  }
  fflush(NULL);
  /* The process ends here; the OS reclaims the heap faster than freeing it object by object. */
  _exit(exit_code);
}
