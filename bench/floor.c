/*
 * The floor of bench/apply.bench.mjs: the restores alone, each exec'd directly, one after
 * another, each given its payload file on stdin; no shell (here a shell costs as much as a
 * restore). Routing is counted as zero (a few netlink messages).
 *
 *   floor PAYLOAD PROGRAM [ARGS...] [-- PAYLOAD PROGRAM [ARGS...]]...
 *
 * Exits 0 when every program exited 0, else 1. Compiled by the bench (cc -O2) into a temporary
 * folder; nothing else uses it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int i = 1;
  while (i < argc) {
    int end = i;
    while (end < argc && strcmp(argv[end], "--") != 0) end++;
    if (end - i < 2) return 2;
    argv[end < argc ? end : argc] = NULL;
    const char *payload = argv[i];
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      int fd = open(payload, O_RDONLY);
      if (fd < 0 || dup2(fd, 0) < 0) _exit(127);
      execvp(argv[i + 1], argv + i + 1);
      _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "floor: %s failed\n", argv[i + 1]);
      return 1;
    }
    i = end + 1;
  }
  return 0;
}
