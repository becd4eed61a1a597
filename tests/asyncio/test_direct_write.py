"""Writers and fanout(): frames sent on the socket directly, the rest through the transport.

Both implementations are tested, the compiled kernel (where it is built) and
the Python fallback, on real asyncio socket transports over socket pairs, so
ordering, partial sends and closing are the kernel's, not a mock's.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from conftest import require
from wskit.asyncio import direct_write
from wskit.protocol.connection import Connection, Side
from wskit.speedups import ENABLED


@dataclass
class Kernel:
    """One implementation: its Writer class and its fanout()."""

    name: str
    writer: Callable[..., direct_write.Writer]
    fanout: Callable[..., tuple[int, list[Any]]]
    direct: bool  # sends on the socket itself


def compiled() -> Kernel:
    try:
        from wskit.speedups import write
    except ImportError:
        require(False, "the compiled write kernel (pip install -e . with a C compiler)")
    module: ModuleType = write
    return Kernel("compiled", module.Writer, module.fanout, True)


def python() -> Kernel:
    return Kernel("python", direct_write.PythonWriter, direct_write._fanout_python, False)


@pytest.fixture(params=["compiled", "python"])
def kernel(request: pytest.FixtureRequest) -> Kernel:
    return compiled() if request.param == "compiled" else python()


class Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


@dataclass
class End:
    """Our transport over a socket pair, and the blocking socket at the other end."""

    transport: asyncio.Transport
    theirs: socket.socket

    @property
    def fd(self) -> int:
        return int(self.transport.get_extra_info("socket").fileno())

    def read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.theirs.recv(n - len(data))
            assert chunk, "the other end closed early"
            data += chunk
        return data

    def nothing_more(self) -> bool:
        self.theirs.setblocking(False)
        try:
            self.theirs.recv(1)
        except BlockingIOError:
            return True
        finally:
            self.theirs.setblocking(True)
        return False


@pytest.fixture
async def ends() -> AsyncIterator[Callable[[], Any]]:
    """Open socket pairs on demand; all are closed at the end."""
    opened: list[End] = []

    async def open_end() -> End:
        ours, theirs = socket.socketpair()
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(Sink, ours)
        theirs.settimeout(5)
        end = End(transport, theirs)
        opened.append(end)
        return end

    yield open_end
    for end in opened:
        end.transport.abort()
        end.theirs.close()


def open_core(side: Side = Side.SERVER) -> Connection:
    return Connection(side)


def make(kernel: Kernel, end: End, *, plain: bool = True, fd: int | None = None) -> Any:
    """A writer on ``end`` (sending on its socket directly, unless ``fd=-1``).

    The Python writer never sends on the socket: it takes no descriptor.
    """
    if not kernel.direct:
        return kernel.writer(end.transport, plain)
    return kernel.writer(end.transport, end.fd if fd is None else fd, plain, fd == -1)


@dataclass
class Item:
    """Anything with a writer, as fanout() sees a Conn or a hub Client."""

    frame_writer: Any
    name: str = ""


# -- new_writer ----------------------------------------------------------------------


async def test_new_writer_sends_directly_on_asyncio_socket_transports(
    ends: Callable[[], Any],
) -> None:
    end = await ends()
    writer = direct_write.new_writer(end.transport, open_core())
    assert writer.fd == (end.fd if ENABLED else -1)
    assert writer.plain is True and writer.busy is False


def test_new_writer_goes_through_other_transports() -> None:
    class Wrapper(asyncio.Transport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return socket.socket() if name == "socket" else default

    assert direct_write.new_writer(Wrapper(), open_core()).fd == -1


async def test_clients_and_compressed_connections_need_frames_of_their_own(
    ends: Callable[[], Any],
) -> None:
    end = await ends()
    assert direct_write.new_writer(end.transport, open_core(Side.CLIENT)).plain is False


# -- Writer.write ------------------------------------------------------------------------


async def test_an_idle_socket_gets_the_data_at_once(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    end = await ends()
    writer = make(kernel, end)
    assert writer.write(b"hello ") is True
    assert writer.write(memoryview(b"world")) is True
    assert end.transport.get_write_buffer_size() == 0
    assert end.read(11) == b"hello world"


async def test_without_a_descriptor_the_transport_writes(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    end = await ends()
    writer = make(kernel, end, fd=-1)
    assert writer.fd == -1
    assert writer.write(bytearray(b"via the transport")) is True
    assert end.read(17) == b"via the transport"


async def test_what_the_socket_does_not_take_is_queued_in_order(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    end = await ends()
    end.transport.set_write_buffer_limits(high=2**30)
    writer = make(kernel, end)
    # Far more than the socket buffers hold: part is sent, the rest queued,
    # and later writes queue behind it instead of overtaking it.
    big = bytes(range(256)) * 16384  # 4 MiB
    assert writer.write(big) is True
    assert end.transport.get_write_buffer_size() > 0
    assert writer.write(b"after") is True
    received = await asyncio.to_thread(end.read, len(big) + 5)
    assert received == big + b"after"
    # Drained: direct sends again.
    assert end.transport.get_write_buffer_size() == 0
    assert writer.write(b"again") is True
    assert end.read(5) == b"again"


async def test_a_closing_transport_is_not_written(kernel: Kernel, ends: Callable[[], Any]) -> None:
    end = await ends()
    writer = make(kernel, end)
    end.transport.close()
    writer.detach()  # what Conn does when it closes the transport
    assert writer.fd == -1
    assert writer.write(b"too late") is False
    await asyncio.wait_for(end.transport.get_protocol().lost, 5)  # type: ignore[attr-defined]
    assert end.theirs.recv(100) == b""  # closed, nothing written


async def test_parts_go_out_in_order(kernel: Kernel, ends: Callable[[], Any]) -> None:
    end = await ends()
    writer = make(kernel, end)
    assert writer.write_parts([b"head:", b"payload", b"", b":tail"]) is True
    assert writer.write_parts([bytearray(b"[mutable]"), memoryview(b"[view]")]) is True
    assert end.read(32) == b"head:payload:tail[mutable][view]"


async def test_parts_the_socket_does_not_take_are_queued_in_order(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    end = await ends()
    end.transport.set_write_buffer_limits(high=2**30)
    writer = make(kernel, end)
    big = bytes(range(256)) * 16384  # 4 MiB: the socket takes part of it
    parts = [b"<", big, b"|", big, b">"]
    assert writer.write_parts(parts) is True
    assert end.transport.get_write_buffer_size() > 0
    assert writer.write_parts([b"after", b"!"]) is True
    expected = b"".join(parts) + b"after!"
    assert await asyncio.to_thread(end.read, len(expected)) == expected


async def test_parts_are_not_written_to_a_closing_transport(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    end = await ends()
    writer = make(kernel, end)
    end.transport.close()
    writer.detach()
    assert writer.write_parts([b"too", b"late"]) is False
    await asyncio.wait_for(end.transport.get_protocol().lost, 5)  # type: ignore[attr-defined]
    assert end.theirs.recv(100) == b""


def test_the_compiled_writer_checks_its_arguments() -> None:
    writer = compiled().writer
    with pytest.raises(TypeError):
        writer(None, -1)
    with pytest.raises(TypeError):
        writer(object(), "3", True, True)
    with pytest.raises(TypeError):
        writer(object(), -1, True, False).write_parts((b"not", b"a list"))


# -- fanout ------------------------------------------------------------------------


async def test_fanout_writes_every_plain_open_writer_but_the_skipped_one(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    endpoints = [await ends() for _ in range(4)]
    items = [Item(make(kernel, end), str(i)) for i, end in enumerate(endpoints)]
    written, left = kernel.fanout(items, b"frame", 2**20, items[2])
    assert (written, left) == (3, [])
    for i, end in enumerate(endpoints):
        if i == 2:
            assert end.nothing_more()
        else:
            assert end.read(5) == b"frame"


async def test_fanout_leaves_what_it_cannot_serve(kernel: Kernel, ends: Callable[[], Any]) -> None:
    plain = Item(make(kernel, await ends()), "plain")
    no_writer = Item(None, "no writer")
    own_frame = Item(make(kernel, await ends(), plain=False), "own frame")
    busy = Item(make(kernel, await ends()), "busy")
    busy.frame_writer.busy = True
    closed = Item(make(kernel, await ends()), "closed")
    closed.frame_writer.open = False  # what the connection says once a close frame went
    lost_end = await ends()
    lost = Item(make(kernel, lost_end), "lost")
    lost_end.transport.close()
    lost.frame_writer.detach()
    items = [plain, no_writer, own_frame, busy, closed, lost]
    written, left = kernel.fanout(iter(items), b"frame", 2**20, None)
    assert written == 1
    assert [item.name for item in left] == ["no writer", "own frame", "busy", "closed", "lost"]


async def test_fanout_leaves_a_connection_over_max_buffer(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    slow_end, fast_end = await ends(), await ends()
    slow_end.transport.set_write_buffer_limits(high=2**30)
    slow, fast = Item(make(kernel, slow_end), "slow"), Item(make(kernel, fast_end), "fast")
    slow.frame_writer.write(bytes(8 * 2**20))  # the socket takes part; the rest waits
    queued = slow_end.transport.get_write_buffer_size()
    assert queued > 0
    written, left = kernel.fanout([slow, fast], b"frame", queued - 1, None)
    assert (written, [item.name for item in left]) == (1, ["slow"])
    # Under the limit it is written, behind what is queued.
    written, left = kernel.fanout([slow], b"frame", queued, None)
    assert (written, left) == (1, [])
    received = await asyncio.to_thread(slow_end.read, 8 * 2**20 + 5)
    assert received.endswith(b"\0frame")


def test_the_compiled_fanout_checks_its_arguments() -> None:
    fanout = compiled().fanout
    with pytest.raises(TypeError):
        fanout([], b"frame", 10)
    with pytest.raises(TypeError):
        fanout([], "not bytes", 10, None)
    with pytest.raises(TypeError):
        fanout(5, b"frame", 10, None)
    assert fanout([], b"frame", sys.maxsize, None) == (0, [])


async def test_fanout_takes_a_dict_of_writers(kernel: Kernel, ends: Callable[[], Any]) -> None:
    first, second, third = await ends(), await ends(), await ends()
    members = {
        "a": make(kernel, first),
        "b": None,
        "c": make(kernel, second),
        "d": make(kernel, third),
    }
    written, left = kernel.fanout(members, b"frame", 2**20, "c")
    assert (written, left) == (2, ["b"])
    assert first.read(5) == b"frame" and third.read(5) == b"frame"
    assert second.nothing_more()


class Slotted:
    """An item keeping its writer in a slot, as Conn does."""

    __slots__ = ("frame_writer",)

    def __init__(self, writer: Any = None) -> None:
        if writer is not None:
            self.frame_writer = writer


async def test_fanout_reads_writers_from_slots_and_attributes_alike(
    kernel: Kernel, ends: Callable[[], Any]
) -> None:
    endpoints = [await ends() for _ in range(4)]
    unset = Slotted()  # a slot never set: no writer
    items = [
        Slotted(make(kernel, endpoints[0])),
        Item(make(kernel, endpoints[1])),
        unset,
        Slotted(make(kernel, endpoints[2])),
        Item(make(kernel, endpoints[3])),
    ]
    for _ in range(2):  # the slot's place is remembered between calls
        written, left = kernel.fanout(items, b"frame", 2**20, None)
        assert (written, left) == (4, [unset])
    for end in endpoints:
        assert end.read(10) == b"frameframe"


def test_fanout_propagates_an_error_of_the_iterable(kernel: Kernel) -> None:
    def broken() -> Iterator[Item]:
        yield Item(None)
        raise ValueError("broken iterable")

    with pytest.raises(ValueError, match="broken iterable"):
        kernel.fanout(broken(), b"frame", 10, None)
