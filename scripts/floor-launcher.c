/* floor-launcher: the least a full-map launch must do, as a yardstick (issue 11, item 4).
 *
 * usage: floor-launcher NEWUIDMAP NEWGIDMAP UID_RANGES GID_RANGES COMMAND [ARG]...
 *        RANGES: START:COUNT[,START:COUNT]... the caller's subordinate ranges, in file order
 *
 * Forks the two helpers ahead, unshares the user namespace, releases them (one byte each on a
 * pipe) to exec newuidmap/newgidmap with the full map (caller -> 0, then the ranges at 1, 2, ...
 * contiguously, as become-root --map=full), waits for both, sets every id to 0 and execs
 * COMMAND (PATH search, as become-root does). No subid files, no passwd, no option parsing, no
 * error messages beyond perror: scripts/bench-startup reads the ranges and passes them, so that
 * what is left is the floor `become-root true` is held against. Not for use as a tool.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RANGES 32

static pid_t helper(const char *tool, unsigned own, char *ranges, int go, pid_t target)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	char byte;
	if (read(go, &byte, 1) != 1) /* the launcher died before unsharing */
		_exit(1);
	static char text[3 + 3 * MAX_RANGES][16];
	char *argv[5 + 3 * MAX_RANGES] = {(char *)tool, text[0]};
	int n = 2, t = 1;
	unsigned long inside = 1;
	snprintf(text[0], sizeof text[0], "%d", target);
	argv[n++] = "0";
	snprintf(text[t], sizeof text[t], "%u", own);
	argv[n++] = text[t++];
	argv[n++] = "1";
	for (char *r = strtok(ranges, ","); r && t + 2 < 3 + 3 * MAX_RANGES; r = strtok(NULL, ",")) {
		char *colon = strchr(r, ':');
		if (!colon)
			_exit(2);
		*colon = '\0';
		snprintf(text[t], sizeof text[t], "%lu", inside);
		argv[n++] = text[t++];
		argv[n++] = r;
		argv[n++] = colon + 1;
		inside += strtoul(colon + 1, NULL, 10);
	}
	argv[n] = NULL;
	execv(tool, argv);
	perror(tool);
	_exit(127);
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: floor-launcher NEWUIDMAP NEWGIDMAP UID_RANGES GID_RANGES "
				"COMMAND [ARG]...\n");
		return 2;
	}
	int go[2];
	if (pipe2(go, O_CLOEXEC) != 0)
		return perror("pipe2"), 1;
	pid_t self = getpid();
	pid_t uid_helper = helper(argv[1], getuid(), argv[3], go[0], self);
	pid_t gid_helper = helper(argv[2], getgid(), argv[4], go[0], self);
	if (uid_helper < 0 || gid_helper < 0)
		return perror("fork"), 1;
	if (unshare(CLONE_NEWUSER) != 0)
		return perror("unshare"), 1;
	if (write(go[1], "11", 2) != 2)
		return perror("write"), 1;
	int status, ok = 1;
	for (int i = 0; i < 2; i++)
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ok = 0;
	if (!ok)
		return fprintf(stderr, "floor-launcher: a map helper failed\n"), 1;
	if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
		return perror("setresuid"), 1;
	execvp(argv[5], argv + 5);
	perror(argv[5]);
	return 127;
}
