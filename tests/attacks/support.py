"""Raw-socket attackers: a client that can break every rule a library would keep.

Shared by the attack suite (``tests/attacks``) and the tests that run the
same attacks on other servers (``tests/uvicorn``): the opening handshake
by hand, masked frames of any shape, a background reader, the frames the
server sent, and the server's resident set size read from ``/proc``.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from wskit.protocol.frames import apply_mask

__all__ = [
    "TIMEOUT",
    "Reader",
    "client_frame",
    "open_websocket",
    "parse_server_frames",
    "ping_until_stalled",
    "rss",
    "text_in_fragments",
]

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
#: How long a raw socket waits for the server, in seconds.
TIMEOUT = 10
MIB = 2**20


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_websocket(port: int, receive_buffer: int | None = None, path: str = "/") -> socket.socket:
    """A raw socket past the opening handshake of ``path``.

    ``receive_buffer`` is SO_RCVBUF, set before connecting.
    """
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(UPGRADE.format(path=path).encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "no handshake response"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101 "), response
    assert response.endswith(b"\r\n\r\n")  # nothing after the handshake yet
    return sock


def client_frame(b0: int, payload: bytes = b"") -> bytes:
    """A masked frame, as a client sends it."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes([b0, 0x80 | length])
    elif length < 65536:
        header = bytes([b0, 0x80 | 126]) + struct.pack("!H", length)
    else:
        header = bytes([b0, 0x80 | 127]) + struct.pack("!Q", length)
    return header + key + apply_mask(payload, key)


def ping_until_stalled(sock: socket.socket) -> tuple[int, bytes]:
    """Send pings on ``sock`` and never read their pongs, until the server stops reading.

    The pings have the largest payload, so that each pong is as large as it
    gets. ``sock`` is left non-blocking. Stops after 1 s without progress, or
    at 64 MiB (500 000 pings: the servers of old read them all). Returns how
    many bytes went, and the bytes that end the ping the flood stopped inside
    (empty if it stopped between two).
    """
    sock.setblocking(False)
    ping = client_frame(0x89, b"p" * 125)
    pings = ping * 8000  # about 1 MB
    view = memoryview(pings)
    sent = 0
    stalled_since: float | None = None
    while sent < 64 * MIB:
        try:
            sent += sock.send(view[sent % len(pings) :])
            stalled_since = None
        except BlockingIOError:
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since > 1.0:
                break
            time.sleep(0.01)
    start = sent % len(pings)
    return sent, bytes(view[start : start + (-sent) % len(ping)])


def text_in_fragments(size: int, fragment: int) -> tuple[bytes, bytes]:
    """About ``size`` bytes of UTF-8 text, and the frames that send it in ``fragment``-byte pieces.

    The text has characters of every UTF-8 length, whole ones only; the
    pieces split them. Returns ``(text, frames)``: one message, masked.
    """
    text = ("aé€😀" * (size // 10 + 1)).encode()[:size]
    text = text.decode(errors="ignore").encode()  # whole characters only
    pieces = [text[i : i + fragment] for i in range(0, len(text), fragment)]
    frames = [client_frame(0x01, pieces[0])]
    frames += [client_frame(0x00, piece) for piece in pieces[1:-1]]
    frames.append(client_frame(0x80, pieces[-1]))
    return text, b"".join(frames)


class Reader(threading.Thread):
    """Reads everything the server sends on ``sock`` until EOF, in the background."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.data = bytearray()

    def run(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
        except OSError:
            pass


def parse_server_frames(data: bytes | bytearray) -> list[tuple[int, bytes]]:
    """``(first byte, payload)`` of each whole unmasked frame in ``data``."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        b0, length = data[pos], data[pos + 1] & 0x7F
        head = 2
        if length == 126:
            (length,), head = struct.unpack_from("!H", data, pos + 2), 4
        elif length == 127:
            (length,), head = struct.unpack_from("!Q", data, pos + 2), 10
        if len(data) - pos < head + length:
            break
        frames.append((b0, bytes(data[pos + head : pos + head + length])))
        pos += head + length
    return frames
