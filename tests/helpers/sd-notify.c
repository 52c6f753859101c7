/* sd_notify(3) for an image without systemd, as `systemd-notify --pid=parent MESSAGE`: send
 * argv[1] ("READY=1") as one datagram to the unix socket named by $NOTIFY_SOCKET, with the
 * credentials of its parent process (an init's shell script: pid 1), which root in the pid
 * namespace may claim. Exits 0 when sent, 1 otherwise (saying why on standard error). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (argc < 2 || !path || path[0] != '/' || strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "sd-notify: usage: NOTIFY_SOCKET=/path sd-notify MESSAGE\n");
        return 1;
    }
    strcpy(addr.sun_path, path);
    struct iovec iov = {.iov_base = argv[1], .iov_len = strlen(argv[1])};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } control = {0};
    struct msghdr msg = {
        .msg_name = &addr,
        .msg_namelen = sizeof addr,
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof control.buf,
    };
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_CREDENTIALS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    struct ucred creds = {.pid = getppid(), .uid = getuid(), .gid = getgid()};
    memcpy(CMSG_DATA(cmsg), &creds, sizeof creds);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendmsg(fd, &msg, 0) < 0) {
        perror("sd-notify");
        return 1;
    }
    return 0;
}
