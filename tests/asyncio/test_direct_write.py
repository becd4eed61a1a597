"""write_through(): frames sent on the socket directly, the rest through the transport.

Both the compiled kernel and the Python fallback are tested (the compiled one
only where it is built), on real asyncio socket transports over a socket
pair, so ordering, partial sends and closing are the kernel's, not a mock's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from conftest import require
from wskit.asyncio import direct_write
from wskit.speedups import ENABLED

Writer = Callable[[Any, int, bytes | bytearray | memoryview], bool]


def compiled() -> Writer:
    try:
        from wskit.speedups import write
    except ImportError:
        require(False, "the compiled write kernel (pip install -e . with a C compiler)")
    return write.write_through


def python() -> Writer:
    return direct_write._write_through_python


WRITERS: dict[str, Callable[[], Writer]] = {"compiled": compiled, "python": python}


@pytest.fixture(params=sorted(WRITERS))
def writer(request: pytest.FixtureRequest) -> Writer:
    return WRITERS[request.param]()


class Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


@pytest.fixture
async def pipe() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """A real asyncio socket transport and the (blocking) socket at the other end."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(Sink, ours)
    theirs.settimeout(5)
    yield transport, theirs
    transport.abort()
    theirs.close()


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the other end closed early"
        data += chunk
    return data


def test_socket_fd_is_offered_only_for_plain_socket_transports() -> None:
    class Wrapper(asyncio.Transport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return socket.socket() if name == "socket" else default

    assert direct_write.socket_fd(Wrapper()) == -1


async def test_socket_fd_of_an_asyncio_socket_transport(
    pipe: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, _ = pipe
    expected = transport.get_extra_info("socket").fileno() if ENABLED else -1
    assert direct_write.socket_fd(transport) == expected


async def test_an_idle_socket_gets_the_data_at_once(
    writer: Writer, pipe: tuple[asyncio.Transport, socket.socket]
) -> None:
    transport, theirs = pipe
    fd = transport.get_extra_info("socket").fileno()
    assert writer(transport, fd, b"hello ") is True
    assert writer(transport, fd, memoryview(b"world")) is True
    assert transport.get_write_buffer_size() == 0
    assert read_exactly(theirs, 11) == b"hello world"


async def test_without_a_descriptor_the_transport_writes(
    writer: Writer, pipe: tuple[asyncio.Transport, socket.socket]
) -> None:
    transport, theirs = pipe
    assert writer(transport, -1, bytearray(b"via the transport")) is True
    assert read_exactly(theirs, 17) == b"via the transport"


async def test_what_the_socket_does_not_take_is_queued_in_order(
    writer: Writer, pipe: tuple[asyncio.Transport, socket.socket]
) -> None:
    transport, theirs = pipe
    fd = transport.get_extra_info("socket").fileno()
    transport.set_write_buffer_limits(high=2**30)
    # Far more than the socket buffers hold: part is sent, the rest queued,
    # and later writes queue behind it instead of overtaking it.
    big = bytes(range(256)) * 16384  # 4 MiB
    assert writer(transport, fd, big) is True
    assert transport.get_write_buffer_size() > 0
    assert writer(transport, fd, b"after") is True
    received = await asyncio.to_thread(read_exactly, theirs, len(big) + 5)
    assert received == big + b"after"


async def test_a_closing_transport_is_not_written(
    writer: Writer, pipe: tuple[asyncio.Transport, socket.socket]
) -> None:
    transport, theirs = pipe
    fd = transport.get_extra_info("socket").fileno()
    transport.close()
    assert writer(transport, fd, b"too late") is False
    assert writer(transport, -1, b"too late") is False
    await asyncio.wait_for(transport.get_protocol().lost, 5)  # type: ignore[attr-defined]
    assert theirs.recv(100) == b""  # closed, nothing written


def test_the_compiled_kernel_checks_its_arguments() -> None:
    write_through = compiled()
    with pytest.raises(TypeError):
        write_through(None, -1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        write_through(object(), "3", b"")  # type: ignore[arg-type]
