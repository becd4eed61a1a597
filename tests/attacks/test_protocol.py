"""Attacks on one connection's resources: unread pongs, endless fragments, many small fragments.

Each test attacks a real ``wskit echo`` subprocess (16 MiB ``max_size``,
default ``write_limit``) from a raw socket, so that the client can break
every rule a library would keep: never read, send empty fragments forever.
They assert mechanisms (the client's sends stop being accepted, the close
code, the message echoed), plus the server's RSS growth against the 24 MiB
bound of the issue, read from ``/proc``.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from attacks.support import (
    TIMEOUT,
    Reader,
    client_frame,
    open_websocket,
    parse_server_frames,
    ping_until_stalled,
    rss,
    text_in_fragments,
)
from cli.process_support import start, stop
from wskit.protocol.connection import MIN_FRAGMENT_COST

ECHO_MAX_SIZE = 16 * 2**20
MIB = 2**20


@pytest.fixture(scope="module")
def echo_server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process, port = start("echo")
    try:
        yield process, port
    finally:
        stop(process)


def test_a_peer_that_never_reads_its_pongs_is_no_longer_read(
    echo_server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = echo_server
    sock = open_websocket(port, receive_buffer=4096)
    before = rss(process.pid)
    sent, rest_of_the_ping = ping_until_stalled(sock)
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
    sock.sendall(rest_of_the_ping)
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
    text, frames = text_in_fragments(4 * MIB, 64)
    sock.sendall(frames)
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
