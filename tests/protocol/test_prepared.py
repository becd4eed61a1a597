"""Unit tests of wskit.protocol.prepared: one message encoded once for many connections."""

from __future__ import annotations

import pytest

from protocol.support import make_pair, parse_frames, reassemble
from wskit.protocol.connection import Connection, Side
from wskit.protocol.events import DataReceived
from wskit.protocol.frames import encode_frame
from wskit.protocol.prepared import PreparedMessage


def test_prepared_identical_bytes_for_plain_server_conns() -> None:
    message = PreparedMessage("hello everyone")
    servers = [Connection(Side.SERVER) for _ in range(3)]
    for conn in servers:
        conn.send_prepared(message)
    outputs = [b"".join(conn.data_to_send()) for conn in servers]
    assert outputs[0] == outputs[1] == outputs[2] == encode_frame(0x1, b"hello everyone")
    assert message.frame_for(servers[0]) is message.frame_for(servers[1])
    client = Connection(Side.CLIENT)
    client.receive_data(outputs[0])
    assert client.events_received() == [DataReceived("hello everyone", True)]


def test_prepared_binary() -> None:
    message = PreparedMessage(b"\x00\x01")
    assert message.opcode == 0x2
    assert message.plain_frame() == b"\x82\x02\x00\x01"


def test_prepared_shared_compressed_frame_no_context_takeover() -> None:
    payload = "compress me please " * 50
    message = PreparedMessage(payload)
    pairs = [make_pair({"server_no_context_takeover": True}) for _ in range(3)]
    frames = [message.frame_for(server) for _, server in pairs]
    assert frames[0] is frames[1] is frames[2]
    (frame,) = parse_frames(frames[0])
    assert frame.rsv1 and not frame.masked
    assert len(frame.payload) < len(payload)
    for client, _ in pairs:
        # Decodes on each peer, and again for a second message.
        client.receive_data(frames[0])
        client.receive_data(message.frame_for(pairs[0][1]))
        assert reassemble(client.events_received()) == [payload, payload]
        assert client.error is None


def test_prepared_different_params_get_different_frames() -> None:
    payload = b"abcdefgh" * 200
    message = PreparedMessage(payload)
    _, s15 = make_pair({"server_no_context_takeover": True})
    c9, s9 = make_pair({"server_no_context_takeover": True, "server_max_window_bits": 9})
    f15 = message.frame_for(s15)
    f9 = message.frame_for(s9)
    assert f15 is not f9
    c9.receive_data(f9)
    assert c9.events_received() == [DataReceived(payload, True)]


def test_prepared_context_takeover_per_connection() -> None:
    payload = "context takeover " * 40
    message = PreparedMessage(payload)
    (c1, s1), (c2, s2) = make_pair({}), make_pair({})
    # s1 has sent something before: its compressor has history.
    s1.send_text("context takeover " * 10)
    c1.receive_data(b"".join(s1.data_to_send()))
    c1.events_received()
    s1.send_prepared(message)
    s2.send_prepared(message)
    f1 = b"".join(s1.data_to_send())
    f2 = b"".join(s2.data_to_send())
    assert f1 != f2
    s1.send_prepared(message)
    f1b = b"".join(s1.data_to_send())
    c1.receive_data(f1 + f1b)
    c2.receive_data(f2)
    assert reassemble(c1.events_received()) == [payload, payload]
    assert reassemble(c2.events_received()) == [payload]


@pytest.mark.parametrize("deflate", [None, {}, {"client_no_context_takeover": True}])
def test_prepared_client_conns_mask_each_frame(deflate: dict[str, object] | None) -> None:
    payload = b"from a client " * 20
    message = PreparedMessage(payload)
    pairs = [make_pair(deflate) for _ in range(2)]
    frames = []
    for client, server in pairs:
        client.send_prepared(message)
        data = b"".join(client.data_to_send())
        frames.append(data)
        (frame,) = parse_frames(data)
        assert frame.masked
        assert frame.rsv1 == (deflate is not None)
        server.receive_data(data)
        assert server.events_received() == [DataReceived(payload, True)]
        assert server.error is None
    assert frames[0] != frames[1]


def test_prepared_respects_threshold_and_compression_enabled() -> None:
    message = PreparedMessage(b"tiny")
    _, server = make_pair({"server_no_context_takeover": True, "threshold": 128})
    assert message.frame_for(server) == message.plain_frame()
    big = PreparedMessage(b"b" * 1000)
    server.compression_enabled = False
    assert big.frame_for(server) == big.plain_frame()
