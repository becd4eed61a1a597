"""Attacks on one connection's resources: unread pongs, endless fragments, many small fragments.

Each test attacks a real ``wskit echo`` subprocess (16 MiB ``max_size``,
default ``write_limit``) from a raw socket, so that the client can break
every rule a library would keep: never read, send empty fragments forever.
They assert mechanisms (the client's sends stop being accepted, the close
code, the message echoed), plus the server's RSS growth against the 24 MiB
bound of the issue, read from ``/proc``.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from cli.process_support import start, stop
from wskit.protocol.connection import MIN_FRAGMENT_COST
from wskit.protocol.frames import apply_mask

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
ECHO_MAX_SIZE = 16 * 2**20
TIMEOUT = 10
MIB = 2**20


@pytest.fixture(scope="module")
def echo_server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process, port = start("echo")
    try:
        yield process, port
    finally:
        stop(process)


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_websocket(port: int, receive_buffer: int | None = None) -> socket.socket:
    """A raw socket past the opening handshake (``receive_buffer``: SO_RCVBUF, set first)."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(UPGRADE)
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


def test_a_peer_that_never_reads_its_pongs_is_no_longer_read(
    echo_server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = echo_server
    sock = open_websocket(port, receive_buffer=4096)
    before = rss(process.pid)
    sock.setblocking(False)
    # Pings with the largest payload, so that each pong is as large as it gets.
    pings = client_frame(0x89, b"p" * 125) * 8000  # about 1 MB
    view = memoryview(pings)
    sent = 0
    stalled_since: float | None = None
    cap = 64 * MIB  # 500 000 pings; the server of old read them all
    while sent < cap:
        try:
            sent += sock.send(view[sent % len(pings) :])
            stalled_since = None
        except BlockingIOError:
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since > 1.0:
                break
            time.sleep(0.01)
    # The server stopped reading: what it took is its write_limit and one read,
    # the rest sits in the kernel's socket buffers (a few MB each way).
    assert sent < 32 * MIB, f"the server read {sent} bytes of pings nobody reads the pongs of"
    growth = rss(process.pid) - before
    assert growth < 24 * MIB, f"server RSS grew by {growth / MIB:.1f} MiB"
    # Once the peer reads its pongs, the server reads its pings again.
    sock.setblocking(True)
    sock.settimeout(TIMEOUT)
    received = 0
    while received < 2 * MIB:
        received += len(sock.recv(1 << 20))
    # The flood stopped inside a frame: its end first, then a last ping.
    frame_size = len(pings) // 8000
    start = sent % len(pings)
    sock.sendall(view[start : start + (-sent) % frame_size])
    sock.sendall(client_frame(0x89, b"again"))
    tail = b""
    deadline = time.monotonic() + TIMEOUT
    while b"again" not in tail and time.monotonic() < deadline:
        tail = tail[-200:] + sock.recv(1 << 20)
    assert b"\x8a\x05again" in tail  # the pong of the last ping came back
    sock.close()


def test_endless_empty_fragments_end_in_1009(
    echo_server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = echo_server
    sock = open_websocket(port)
    reader = Reader(sock)
    reader.start()
    before = rss(process.pid)
    sock.sendall(client_frame(0x02))
    block = client_frame(0x00) * 10_000
    # Each empty fragment counts MIN_FRAGMENT_COST bytes: the message is over
    # the echo server's 16 MiB after 262 144 of them. Send up to 400 000.
    fragments = 1
    try:
        while fragments < 400_000 and reader.is_alive():
            sock.sendall(block)
            fragments += 10_000
    except OSError:
        pass  # the server closed while we were still sending
    reader.join(TIMEOUT)
    frames = parse_server_frames(reader.data)
    assert frames, f"no close frame after {fragments} empty fragments"
    b0, payload = frames[0]
    assert b0 == 0x88 and struct.unpack("!H", payload[:2])[0] == 1009, frames[0]
    assert fragments >= ECHO_MAX_SIZE // MIN_FRAGMENT_COST  # not one fragment too early
    assert rss(process.pid) - before < 24 * MIB
    sock.close()


def test_a_large_message_in_64_byte_fragments_is_echoed_intact(
    echo_server: tuple[subprocess.Popen[str], int],
) -> None:
    # What conformance suites do: 4 MiB of text in 64-byte fragments, here
    # with characters of every UTF-8 length, split across fragments.
    _, port = echo_server
    sock = open_websocket(port)
    reader = Reader(sock)
    reader.start()
    text = ("aé€😀" * (4 * MIB // 10 + 1)).encode()[: 4 * MIB]
    text = text.decode(errors="ignore").encode()  # whole characters only
    pieces = [text[i : i + 64] for i in range(0, len(text), 64)]
    frames = [client_frame(0x01, pieces[0])]
    frames += [client_frame(0x00, piece) for piece in pieces[1:-1]]
    frames.append(client_frame(0x80, pieces[-1]))
    sock.sendall(b"".join(frames))
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not parse_server_frames(reader.data):
        time.sleep(0.05)
    echoed = parse_server_frames(reader.data)
    assert echoed, "no echo"
    b0, payload = echoed[0]
    assert b0 == 0x81  # one whole text frame
    assert payload == text
    sock.shutdown(socket.SHUT_RDWR)  # wakes the reader up (close() would not)
    reader.join(TIMEOUT)
    sock.close()
