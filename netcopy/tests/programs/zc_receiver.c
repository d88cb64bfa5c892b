/* A receiver that maps what it can with TCP_ZEROCOPY_RECEIVE and reads the rest with read():
 * a foreign zero-copy receiver for `netcopy trace`. It connects to itself over loopback; a
 * forked child (not traced: trace does not follow children) sends TOTAL bytes with
 * MSG_ZEROCOPY from page-aligned buffers, so the receive queue holds whole pages to map.
 * Prints its own totals: what getsockopt reported mapped, what read() copied. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TCP_ZEROCOPY_RECEIVE 35
#define MSG_ZEROCOPY_FLAG 0x4000000
#define SO_ZEROCOPY_OPT 60
#define CHUNK (1 << 20)

/* include/uapi/linux/tcp.h */
struct zc_receive {
	uint64_t address;
	uint32_t length;
	uint32_t recv_skip_hint;
	uint32_t inq;
	int32_t err;
	uint64_t copybuf_address;
	int32_t copybuf_len;
	uint32_t flags;
	uint64_t msg_control;
	uint64_t msg_controllen;
	uint32_t msg_flags;
	uint32_t reserved;
};

static void die(const char *what) {
	perror(what);
	exit(2);
}

static void send_all(int fd, size_t total) {
	int one = 1;
	char *buf = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char ctrl[256];
	if (buf == MAP_FAILED || setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY_OPT, &one, sizeof one))
		die("sender setup");
	memset(buf, 'x', 65536);
	for (size_t sent = 0; sent < total;) {
		size_t n = total - sent < 65536 ? total - sent : 65536;
		ssize_t r = send(fd, buf, n, MSG_ZEROCOPY_FLAG);
		if (r < 0 && errno == ENOBUFS) {
			/* Too many notifications pending: take some off the error queue. */
			struct msghdr m = {.msg_control = ctrl, .msg_controllen = sizeof ctrl};
			struct pollfd p = {.fd = fd, .events = 0};
			poll(&p, 1, 100);
			recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
			continue;
		}
		if (r < 0)
			die("send");
		sent += r;
	}
	shutdown(fd, SHUT_WR);
}

int main(int argc, char **argv) {
	size_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	if (total == 0 || l < 0 || c < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &alen) || connect(c, (void *)&a, sizeof a))
		die("setup");
	int rx = accept(l, NULL, NULL);
	struct sockaddr_in peer;
	socklen_t plen = sizeof peer;
	if (rx < 0 || getpeername(rx, (void *)&peer, &plen))
		die("accept");
	pid_t child = fork();
	if (child == 0) {
		close(rx);
		send_all(c, total);
		_exit(0);
	}
	close(c);
	void *map = mmap(NULL, CHUNK, PROT_READ, MAP_SHARED, rx, 0);
	char *buf = malloc(CHUNK);
	if (map == MAP_FAILED || !buf)
		die("mmap");
	uint64_t mapped = 0, copied = 0, calls = 0;
	while (mapped + copied < total) {
		struct zc_receive zc = {.address = (uintptr_t)map, .length = CHUNK};
		socklen_t zlen = sizeof zc;
		if (getsockopt(rx, IPPROTO_TCP, TCP_ZEROCOPY_RECEIVE, &zc, &zlen))
			die("getsockopt(TCP_ZEROCOPY_RECEIVE)");
		calls++;
		if (zc.length) {
			mapped += zc.length;
			madvise(map, zc.length, MADV_DONTNEED);
		}
		if (zc.recv_skip_hint) {
			ssize_t n = read(rx, buf, zc.recv_skip_hint);
			if (n <= 0)
				die("read");
			copied += n;
		}
		if (!zc.length && !zc.recv_skip_hint) {
			struct pollfd p = {.fd = rx, .events = POLLIN};
			poll(&p, 1, 1000);
		}
	}
	waitpid(child, NULL, 0);
	printf("received %llu mapped %llu copied %llu port %u calls %llu\n",
	       (unsigned long long)(mapped + copied), (unsigned long long)mapped,
	       (unsigned long long)copied, ntohs(peer.sin_port), (unsigned long long)calls);
	return 0;
}
