#!/usr/bin/env python3
"""A MSG_ZEROCOPY sender that is not netcopy's: sends BYTES over TCP on 127.0.0.1 to a
receiver thread of its own, moving its sending thread between the CPUs after every send so
consecutive segments enter the receive path from different CPUs' backlogs (they then arrive
out of order, and TCP retransmits some spuriously). Writes one JSON line to the file named by
its second argument (stdout without one): what it sent, what its receiver read, and the
kernel's own tcpi_bytes_sent and tcpi_bytes_retrans."""

import errno, json, os, socket, struct, sys, threading, time

SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
TCP_INFO = 11
CHUNK = 64 * 1024
TOTAL = int(sys.argv[1]) if len(sys.argv) > 1 else 256 * CHUNK


def receive(listener, out):
    conn, _ = listener.accept()
    got = 0
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        got += len(data)
    out["received"] = got
    conn.close()


def reap(sock):
    """Reads every completion waiting on the error queue (so pinned memory is released)."""
    while True:
        try:
            sock.recvmsg(1, 256, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return


def tcp_info(sock):
    info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 232)
    unacked = struct.unpack_from("I", info, 24)[0]
    sent, retrans = struct.unpack_from("QQ", info, 200)
    return unacked, sent, retrans


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    out = {}
    receiver = threading.Thread(target=receive, args=(listener, out))
    receiver.start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    sock.connect(listener.getsockname())
    cpus = sorted(os.sched_getaffinity(0))
    buf = memoryview(bytearray(b"z" * CHUNK))
    sent, turn = 0, 0
    while sent < TOTAL:
        os.sched_setaffinity(0, {cpus[turn % len(cpus)]})
        turn += 1
        try:
            n = sock.send(buf[: min(CHUNK, TOTAL - sent)], MSG_ZEROCOPY)
            sent += n
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                raise
            time.sleep(0.001)
        reap(sock)
    sock.shutdown(socket.SHUT_WR)
    receiver.join()
    deadline = time.time() + 10
    while tcp_info(sock)[0] and time.time() < deadline:
        time.sleep(0.01)
    unacked, kernel_sent, retrans = tcp_info(sock)
    reap(sock)
    report = json.dumps({"sent": sent, "received": out["received"], "unacked": unacked,
                         "tcpi_bytes_sent": kernel_sent, "tcpi_bytes_retrans": retrans})
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(report + "\n")
    else:
        print(report)
    sock.close()


main()
