# Opens N TCP connections to itself on PORT, one after another, and sends SIZE bytes on each.
# A program netcopy did not write, for `netcopy trace` to account for.
import socket, sys
N, SIZE, PORT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT))
srv.listen(128)
payload = bytes(SIZE)
sent = received = 0
for _ in range(N):
    c = socket.create_connection(("127.0.0.1", PORT))
    # Reset on close: 20 000 connections must not leave 20 000 sockets in TIME_WAIT.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s, _ = srv.accept()
    c.sendall(payload)
    sent += SIZE
    got = 0
    while got < SIZE:
        got += len(s.recv(SIZE - got))
    received += got
    s.close()
    c.close()
print(f"sent {sent} received {received}")
