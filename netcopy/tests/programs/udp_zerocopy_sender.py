# Sends N datagrams of SIZE bytes with MSG_ZEROCOPY on a connected UDP socket and reads
# each back on a second socket: a foreign zero-copy UDP sender for `netcopy trace`.
import socket, sys
N, SIZE = int(sys.argv[1]), int(sys.argv[2])
SO_ZEROCOPY, MSG_ZEROCOPY = 60, 0x4000000
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
tx.connect(rx.getsockname())
payload = bytes(SIZE)
sent = received = 0
for _ in range(N):
    sent += tx.send(payload, MSG_ZEROCOPY)
    received += len(rx.recv(65536))
print(f"sent {sent} received {received} port {tx.getsockname()[1]}")
