/* floor-relay: the least a TCP port forwarder must do, per byte and per connection, as the
 * yardstick of scripts/bench-net parts (a) and (d) (issue 11, item 6).
 *
 * usage: floor-relay [-e] LISTEN_PORT TARGET_PORT COMMAND [ARG]...
 *
 * Listens on 127.0.0.1:LISTEN_PORT, runs COMMAND (the server, which listens on
 * 127.0.0.1:TARGET_PORT), and relays each connection to TARGET_PORT, with TCP_NODELAY on both
 * sockets, as every forwarder:
 *   - by default, two threads per connection, each moving one direction with blocking
 *     splice(2) through a 1 MiB pipe: the fewest system calls a splice relay makes per byte
 *     (one into the pipe, one out, no poll), the floor of part (a);
 *   - with -e, one thread and a level-triggered epoll(7) loop: a connection costs an accept,
 *     a connect and two epoll registrations, and no thread; every read is passed on at once
 *     through one shared pipe (the writes block: fine for part (d)'s short requests), the
 *     floor of part (d).
 * There is no namespace to cross, no provider and no error message beyond perror: what is
 * left is the kernel's cost of one more loopback TCP hop, and of the hand-offs between the
 * client, the relay and the server, which every forwarder pays. Exits with COMMAND's status.
 * Not for use as a tool.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PIPE_SIZE (1 << 20)

struct conn {
	int fd[2];
	atomic_int left; /* directions still running; the last one closes both sockets */
};

struct way {
	struct conn *conn;
	int from, to;
};

static pid_t server;

static void *move(void *arg)
{
	struct way *way = arg;
	int pipe_fd[2];
	if (pipe2(pipe_fd, O_CLOEXEC) == 0) {
		fcntl(pipe_fd[1], F_SETPIPE_SZ, PIPE_SIZE);
		for (;;) {
			ssize_t n = splice(way->from, NULL, pipe_fd[1], NULL, PIPE_SIZE, SPLICE_F_MOVE);
			if (n <= 0)
				break;
			while (n > 0) {
				ssize_t m = splice(pipe_fd[0], NULL, way->to, NULL, n, SPLICE_F_MOVE);
				if (m <= 0)
					goto out;
				n -= m;
			}
		}
	out:
		close(pipe_fd[0]);
		close(pipe_fd[1]);
	}
	shutdown(way->to, SHUT_WR);
	struct conn *conn = way->conn;
	free(way);
	if (atomic_fetch_sub(&conn->left, 1) == 1) {
		close(conn->fd[0]);
		close(conn->fd[1]);
		free(conn);
	}
	return NULL;
}

static void start(struct conn *conn, int from, int to)
{
	struct way *way = malloc(sizeof *way);
	pthread_t thread;
	pthread_attr_t attr;
	way->conn = conn;
	way->from = from;
	way->to = to;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, move, way) != 0) {
		perror("floor-relay: pthread_create");
		exit(1);
	}
}

/* The relay lives as long as COMMAND: its status is the relay's. */
static void *reap(void *arg)
{
	(void)arg;
	int status;
	while (waitpid(server, &status, 0) < 0)
		;
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* -e: one side of a connection, as epoll's data; the other side is `peer`. */
struct side {
	int fd;
	struct side *peer;
	int done; /* its end came, and was passed on */
};

static void close_both(int epoll_fd, struct side *side)
{
	struct side *peer = side->peer;
	epoll_ctl(epoll_fd, EPOLL_CTL_DEL, side->fd, NULL);
	epoll_ctl(epoll_fd, EPOLL_CTL_DEL, peer->fd, NULL);
	close(side->fd);
	close(peer->fd);
	free(side < peer ? side : peer); /* both sides are one allocation */
}

static int shared_pipe(int pipe_fd[2])
{
	if (pipe2(pipe_fd, O_CLOEXEC) < 0)
		return -1;
	fcntl(pipe_fd[1], F_SETPIPE_SZ, PIPE_SIZE);
	return 0;
}

static void serve_epoll(int listener, const struct sockaddr_in *target)
{
	int one = 1, pipe_fd[2], epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0 || shared_pipe(pipe_fd) < 0) {
		perror("floor-relay: epoll_create1, pipe2");
		exit(1);
	}
	struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL}, events[64];
	epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event);
	for (;;) {
		int n = epoll_wait(epoll_fd, events, 64, -1);
		for (int i = 0; i < n; i++) {
			struct side *side = events[i].data.ptr;
			if (side == NULL) {
				int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
				if (client < 0)
					continue;
				int inside = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
				if (connect(inside, (const struct sockaddr *)target, sizeof *target) < 0) {
					close(client);
					close(inside);
					continue;
				}
				setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
				setsockopt(inside, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
				struct side *pair = calloc(2, sizeof *pair);
				pair[0] = (struct side){.fd = client, .peer = &pair[1]};
				pair[1] = (struct side){.fd = inside, .peer = &pair[0]};
				for (int k = 0; k < 2; k++) {
					struct epoll_event add = {.events = EPOLLIN, .data.ptr = &pair[k]};
					epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pair[k].fd, &add);
				}
				continue;
			}
			ssize_t got = splice(side->fd, NULL, pipe_fd[1], NULL, PIPE_SIZE,
					     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got == 0 && !side->peer->done) { /* this side's end: passed on */
				shutdown(side->peer->fd, SHUT_WR);
				side->done = 1;
				epoll_ctl(epoll_fd, EPOLL_CTL_DEL, side->fd, NULL);
				continue;
			}
			if (got > 0) {
				while (got > 0) {
					ssize_t put = splice(pipe_fd[0], NULL, side->peer->fd, NULL, got,
							     SPLICE_F_MOVE);
					if (put <= 0)
						break;
					got -= put;
				}
				if (got == 0)
					continue; /* all passed on */
				/* Bytes left in the pipe go with the connection. */
				close(pipe_fd[0]);
				close(pipe_fd[1]);
				if (shared_pipe(pipe_fd) < 0)
					exit(1);
			}
			/* Both ends came, or an error: the connection is over. The peer may be in
			 * this batch of events too: wait for the next. */
			close_both(epoll_fd, side);
			break;
		}
	}
}

static void pass_on(int sig)
{
	kill(server, sig);
}

int main(int argc, char **argv)
{
	int use_epoll = argc > 1 && strcmp(argv[1], "-e") == 0;
	argv += use_epoll;
	argc -= use_epoll;
	if (argc < 4) {
		fprintf(stderr, "usage: floor-relay [-e] LISTEN_PORT TARGET_PORT COMMAND [ARG]...\n");
		return 2;
	}
	struct sockaddr_in listen_at = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in target = listen_at;
	target.sin_port = htons(atoi(argv[2]));
	int one = 1, listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(listener, (struct sockaddr *)&listen_at, sizeof listen_at) < 0 ||
	    listen(listener, 128) < 0) {
		perror("floor-relay: listen");
		return 1;
	}
	server = fork();
	if (server == 0) {
		execvp(argv[3], argv + 3);
		perror("floor-relay: exec");
		_exit(127);
	}
	signal(SIGPIPE, SIG_IGN); /* a peer that closed is an error return, not the end of all */
	signal(SIGTERM, pass_on);
	signal(SIGINT, pass_on);
	pthread_t reaper;
	pthread_create(&reaper, NULL, reap, NULL);
	if (use_epoll)
		serve_epoll(listener, &target);
	for (;;) {
		int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (client < 0)
			continue;
		int inside = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(inside, (struct sockaddr *)&target, sizeof target) < 0) {
			close(client);
			close(inside);
			continue;
		}
		/* No Nagle on either side, as every forwarder: small writes are passed on at once. */
		setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(inside, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *conn = malloc(sizeof *conn);
		conn->fd[0] = client;
		conn->fd[1] = inside;
		atomic_init(&conn->left, 2);
		start(conn, client, inside);
		start(conn, inside, client);
	}
}
