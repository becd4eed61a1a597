"""The closing handshake, checked against a model of RFC 6455 section 7.

Two parts. The first checks properties of the transition table of
:mod:`wskit.protocol.state` that the RFC implies (nothing is sent after our
close frame, every phase survives the end of the TCP stream...).

The second is a hypothesis state machine: a client and a server
:class:`Connection` wired back to back through two in-memory "wires", driven
by random sequences of application calls on either side (``send_*``,
``commit_failure``, ``receive_eof``, ``defer_failure`` turned on and off)
and of deliveries, and by frames the test injects as if the peer had sent
them: good data, fragments, control frames, close frames with and without a
code, and protocol violations. After every step each side is checked
against :class:`Endpoint`, a model written from the RFC's text (sections
5.1-5.6, 7.1.1-7.1.7, 7.2 and 7.4, 8.1), not from wskit's code: what may be
sent when, what the application is told, what the connection answers by
itself (the echoed close, pongs), when the TCP connection should be closed
(the server first), and the close codes and reasons each side sees.

Where the RFC leaves a choice, the model follows wskit's documented
contract, and says so: nothing at all is sent once our close frame is out
(no pong either); with ``defer_failure`` the failing close frame waits for
``commit_failure()`` or ``send_close()`` (the error's code wins), and the
application may still send until then; 1000, 1001 and "no code" are the
normal closes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from wskit.exceptions import ConnectionClosedError, ConnectionClosedOK, LocalProtocolError
from wskit.protocol.connection import MIN_FRAGMENT_COST, Connection, Side
from wskit.protocol.events import (
    CloseReceived,
    DataReceived,
    Event,
    PingReceived,
    PongReceived,
)
from wskit.protocol.state import (
    CLOSE_RECEIVED,
    CLOSE_SENT,
    PUBLIC_STATE,
    RECEIVING,
    SENDING,
    TRANSITIONS,
    Phase,
    State,
    Trigger,
)

# --------------------------------------------------------------------------- the table


def reachable() -> set[Phase]:
    seen = {Phase.OPEN}
    while True:
        more = {new for (phase, _), new in TRANSITIONS.items() if phase in seen} - seen
        if not more:
            return seen
        seen |= more


def test_every_phase_is_reachable_from_open() -> None:
    assert reachable() == set(Phase)


def test_the_end_of_the_tcp_stream_is_handled_in_every_phase() -> None:
    assert all((phase, Trigger.RECEIVE_EOF) in TRANSITIONS for phase in Phase)


def test_nothing_is_sent_once_our_close_frame_is_out() -> None:
    # Section 5.5.1: no data frame after the close frame; wskit sends nothing at all.
    sends = {Trigger.SEND_FRAME, Trigger.SEND_CLOSE}
    assert not SENDING & CLOSE_SENT
    assert not any(phase in CLOSE_SENT for phase, trigger in TRANSITIONS if trigger in sends)


def test_a_close_frame_once_out_stays_out() -> None:
    for (phase, _), new in TRANSITIONS.items():
        assert phase not in CLOSE_SENT or new in CLOSE_SENT


def test_nothing_is_parsed_after_a_failure_or_the_peers_close() -> None:
    # Section 7.1.7: once failed, no more data is processed; section 5.5.1: the
    # peer sends nothing after its close frame.
    assert {Phase.OPEN, Phase.CLOSING} == RECEIVING


def test_the_public_state_is_open_exactly_while_frames_may_be_sent() -> None:
    assert {phase for phase, state in PUBLIC_STATE.items() if state is State.OPEN} == SENDING
    assert set(PUBLIC_STATE) == set(Phase)


# --------------------------------------------------------------------------- frames

#: The largest message either side accepts in the state machine below: each
#: fragment but the last counts at least MIN_FRAGMENT_COST (64), so a third
#: fragment that is not the last fails with 1009.
MAX_SIZE = 160


def is_wire_code(code: int) -> bool:
    """Close codes that may appear on the wire (sections 7.4.1, 7.4.2, the IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


#: Normal closes: wskit's documented rule (1000, 1001, or a close frame without a code).
NORMAL = {1000, 1001, 1005}

_KEY = b"\x9a\x3c\x01\xf7"


@dataclass(frozen=True)
class Frame:
    """One frame, as the test builds it or reads it back from a connection's output."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0  # RSV1-RSV3 as three bits
    masked: bool | None = None  # None: as the sending side must (section 5.1)
    long_length: bool = False  # length not in its shortest form (section 5.2)


def xor(data: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[i % 4] for i, byte in enumerate(data))


def serialize(frame: Frame, from_client: bool) -> bytes:
    """Frame -> bytes, written here by hand so as not to test wskit with itself."""
    masked = from_client if frame.masked is None else frame.masked
    b0 = (0x80 if frame.fin else 0) | (frame.rsv << 4) | frame.opcode
    bit = 0x80 if masked else 0
    n = len(frame.payload)
    if n < 126 and not frame.long_length:
        header = bytes([b0, bit | n])
    elif n < 65536 and not (n >= 126 and frame.long_length):
        header = bytes([b0, bit | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([b0, bit | 127]) + n.to_bytes(8, "big")
    if masked:
        return header + _KEY + xor(frame.payload, _KEY)
    return header + frame.payload


def parse(data: bytes) -> list[Frame]:
    """Bytes a connection sent -> frames (they are well-formed, or this fails)."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        n = b1 & 0x7F
        pos += 2
        if n == 126:
            n = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif n == 127:
            n = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        masked = bool(b1 & 0x80)
        key = data[pos : pos + 4] if masked else b""
        pos += len(key)
        payload = data[pos : pos + n]
        assert len(payload) == n, "truncated frame"
        pos += n
        frames.append(
            Frame(
                b0 & 0x0F,
                xor(payload, key) if masked else payload,
                bool(b0 & 0x80),
                b0 >> 4 & 7,
                masked,
            )
        )
    return frames


def close_payload(code: int | None, reason: str = "") -> bytes:
    return b"" if code is None else code.to_bytes(2, "big") + reason.encode()


# --------------------------------------------------------------------------- the model


@dataclass
class Expected:
    """A frame the model expects a connection to send; a close frame's reason may be any."""

    frame: Frame
    any_reason: bool = False


@dataclass
class Endpoint:
    """One end of a WebSocket connection as RFC 6455 describes it, after the handshake."""

    client: bool
    defer_failure: bool
    auto_pong: bool
    #: The close frame we sent (section 7.1.2): (code, reason); 1005 without a code.
    sent_close: tuple[int, str] | None = None
    #: The first close frame received (sections 7.1.5, 7.1.6).
    received_close: tuple[int, str] | None = None
    #: The peer closed the TCP connection.
    eof: bool = False
    #: The close code we failed the connection with (section 7.1.7).
    failure: int | None = None
    #: wskit's defer_failure: the failing close frame is not out yet.
    held: bool = False
    #: Opcode of the fragmented message we are sending, or None (section 5.4).
    out_message: int | None = None
    #: Opcode and bytes so far of the fragmented message we are receiving.
    in_message: int | None = None
    in_bytes: bytes = b""
    #: What the fragments so far count against MAX_SIZE (wskit's MIN_FRAGMENT_COST rule).
    in_cost: int = 0

    # -- what the RFC says of each situation -------------------------------------------

    def may_send(self) -> bool:
        """Section 5.5.1: nothing after our close frame; and nothing once TCP is gone."""
        return self.sent_close is None and not self.eof

    def receiving(self) -> bool:
        """Section 7.1.7: no processing once failed; 5.5.1: nothing after the peer's close."""
        return self.received_close is None and self.failure is None and not self.eof

    def public_state(self) -> State:
        failed = self.failure is not None and not self.held
        if self.eof or self.received_close is not None or failed:
            return State.CLOSED
        if self.sent_close is not None:
            return State.CLOSING
        return State.OPEN

    def should_close_tcp(self) -> bool:
        """Section 7.1.1: the server closes TCP first; 7.1.7: a failure closes it at once."""
        if self.eof or (self.failure is not None and not self.held):
            return True
        both = self.sent_close is not None and self.received_close is not None
        return both and not self.client

    def close_code(self) -> tuple[int, str]:
        """Sections 7.1.5 and 7.1.6: 1005 for a close frame without code, 1006 for none."""
        return self.received_close if self.received_close is not None else (1006, "")

    # -- calls ----------------------------------------------------------------------------

    def close_frame(self, code: int | None, reason: str | None) -> Expected:
        """Our close frame goes out (``reason=None``: any, for a failure's)."""
        self.sent_close = (1005 if code is None else code, reason or "")
        return Expected(Frame(0x8, close_payload(code, reason or "")), any_reason=reason is None)

    def send_data(self, opcode: int, payload: bytes, fin: bool) -> list[Expected] | None:
        """``None``: refused (LocalProtocolError)."""
        if not self.may_send():
            return None
        if opcode == 0 and self.out_message is None:
            return None  # nothing to continue
        if opcode != 0 and self.out_message is not None:
            return None  # section 5.4: messages are not interleaved
        self.out_message = None if fin else (opcode or self.out_message)
        return [Expected(Frame(opcode, payload, fin))]

    def send_control(self, opcode: int, payload: bytes) -> list[Expected] | None:
        if not self.may_send() or len(payload) > 125:  # section 5.5
            return None
        return [Expected(Frame(opcode, payload))]

    def send_close(self, code: int | None, reason: str) -> list[Expected] | None:
        if self.held:
            # wskit: the peer broke the protocol, its error code wins over ours.
            self.held = False
            return [self.close_frame(self.failure, None)]
        if not self.may_send():
            return None
        if code == 1005:
            code = None  # "no code" (section 7.4.1: 1005 is never on the wire)
        if code is None and reason:
            return None
        if code is not None and not is_wire_code(code):
            return None
        if len(reason.encode()) > 123:  # section 5.5: control payloads of 125 bytes
            return None
        return [self.close_frame(code, reason)]

    def commit_failure(self) -> list[Expected]:
        if not self.held:
            return []
        self.held = False
        return [self.close_frame(self.failure, None)]

    # -- frames received -------------------------------------------------------------------

    def violation(self, frame: Frame) -> int | None:
        """The close code a received frame fails the connection with, or ``None``."""
        masked = frame.masked if frame.masked is not None else not self.client
        if masked == self.client:
            return 1002  # section 5.1: clients mask, servers do not
        if frame.long_length or frame.rsv:
            return 1002  # section 5.2: shortest length; no extension negotiated
        op = frame.opcode
        if 3 <= op <= 7 or op >= 11:
            return 1002  # section 5.2: reserved opcodes
        payload = frame.payload
        if op >= 8:
            if not frame.fin or len(payload) > 125:
                return 1002  # section 5.5: control frames are short and whole
            if op == 8:
                if len(payload) == 1:
                    return 1002  # section 5.5.1: a code is two bytes
                if payload and not is_wire_code(int.from_bytes(payload[:2], "big")):
                    return 1002  # section 7.4
                if not is_utf8(payload[2:], whole=True):
                    return 1007  # section 5.5.1, 8.1
            return None
        if (op == 0) != (self.in_message is not None):
            return 1002  # section 5.4: a continuation continues, a new message waits
        message = (self.in_bytes if op == 0 else b"") + payload
        if self.cost_after(frame) > MAX_SIZE:
            return 1009  # section 7.4.1: too big to process
        if (op or self.in_message) == 1 and not is_utf8(message, whole=frame.fin):
            # Section 8.1; 5.6: a fragment may end inside a character, the
            # message may not. (Failing as soon as the bytes cannot become
            # UTF-8 any more is allowed, and what Autobahn's cases expect.)
            return 1007
        return None

    def cost_after(self, frame: Frame) -> int:
        """What the message counts against MAX_SIZE with this data frame (a fragment but
        the last counts at least MIN_FRAGMENT_COST)."""
        size = len(frame.payload)
        if not frame.fin:
            size = max(size, MIN_FRAGMENT_COST)
        return (self.in_cost if frame.opcode == 0 else 0) + size

    def receive(self, frames: list[Frame]) -> tuple[list[Event], list[Expected]]:
        """What the application is told and what is answered, for frames arriving together."""
        events: list[Event] = []
        answers: list[Expected] = []
        for frame in frames:
            if not self.receiving():
                break  # discarded
            code = self.violation(frame)
            if code is not None:
                self.failure = code
                if self.sent_close is None:
                    if self.defer_failure:
                        self.held = True
                    else:
                        answers.append(self.close_frame(code, None))
                break
            op, payload = frame.opcode, frame.payload
            if op == 0x9:
                events.append(PingReceived(payload))
                # Section 5.5.2 (and wskit: not once our close is out).
                if self.auto_pong and self.sent_close is None:
                    answers.append(Expected(Frame(0xA, payload)))
            elif op == 0xA:
                events.append(PongReceived(payload))
            elif op == 0x8:
                if payload:
                    code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
                else:
                    code, reason = 1005, ""
                events.append(CloseReceived(code, reason))
                self.received_close = (code, reason)
                if self.sent_close is None:  # section 5.5.1: echo the code
                    answers.append(self.close_frame(None if code == 1005 else code, reason))
            else:
                message = op or self.in_message
                before = self.in_bytes if op == 0 else b""
                if message == 1:
                    # The characters this frame completes (one may be split).
                    text = utf8_prefix(before + payload)[len(utf8_prefix(before)) :]
                    events.append(DataReceived(text, frame.fin))
                else:
                    events.append(DataReceived(payload, frame.fin))
                self.in_message = None if frame.fin else message
                self.in_bytes = b"" if frame.fin else before + payload
                self.in_cost = 0 if frame.fin else self.cost_after(frame)
        return events, answers


def is_utf8(data: bytes, *, whole: bool) -> bool:
    """Whether ``data`` is UTF-8, or (not ``whole``) the start of some UTF-8 text."""
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        # Only an incomplete last character may still be completed.
        return not whole and exc.reason == "unexpected end of data" and exc.end == len(data)
    return True


def utf8_prefix(data: bytes) -> str:
    """The characters of ``data`` (UTF-8 or the start of it) up to an incomplete last one."""
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        return data[: exc.start].decode()


# --------------------------------------------------------------------------- strategies

SIDES = st.sampled_from(["client", "server"])
TEXT = st.text(max_size=20)
BINARY = st.binary(max_size=40)
INVALID_UTF8 = st.sampled_from([b"\xff", b"abc\xc3\x28", b"\xed\xa0\x80"])
REASONS = st.one_of(st.just(""), st.text(max_size=10), st.just("x" * 124))
SEND_CODES = st.sampled_from([None, 1000, 1001, 1002, 1003, 1005, 1008, 1011, 1012, 3000, 4999])
BAD_CODES = st.sampled_from([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
WIRE_CODES = st.sampled_from([1000, 1001, 1002, 1003, 1008, 1011, 1012, 3000, 4999])


def _well_formed_frames(in_message: int | None) -> st.SearchStrategy[Frame]:
    """Frames that break no rule (but perhaps the size limit), inside ``in_message`` or not."""
    text = TEXT.map(str.encode)
    if in_message is None:
        data = st.one_of(
            st.builds(Frame, st.just(0x1), text, st.booleans()),
            st.builds(Frame, st.just(0x2), BINARY, st.booleans()),
        )
    else:
        data = st.builds(Frame, st.just(0x0), text if in_message == 1 else BINARY, st.booleans())
    control = st.builds(Frame, st.sampled_from([0x9, 0xA]), st.binary(max_size=8))
    close = st.builds(
        Frame, st.just(0x8), st.one_of(st.just(b""), st.builds(close_payload, WIRE_CODES, TEXT))
    )
    return st.one_of(data, data, control, control, close)


#: Good frames by the message they arrive in: none, a text or a binary one.
WELL_FORMED_FRAMES = {message: _well_formed_frames(message) for message in (None, 0x1, 0x2)}


@st.composite
def any_frames(draw: st.DrawFn) -> Frame:
    """A frame as a broken peer might send it: often wrong in one way or more."""
    kind = draw(st.sampled_from(["data", "data", "control", "close", "reserved"]))
    if kind == "data":
        opcode = draw(st.sampled_from([0, 1, 2]))
        payload = draw(st.one_of(TEXT.map(str.encode), BINARY, INVALID_UTF8))
        fin = draw(st.booleans())
    elif kind == "control":
        opcode = draw(st.sampled_from([0x9, 0xA]))
        payload = draw(st.one_of(st.binary(max_size=8), st.binary(min_size=125, max_size=126)))
        fin = draw(st.booleans())
    elif kind == "close":
        opcode = 0x8
        fin = True
        payload = draw(
            st.one_of(
                st.just(b""),
                st.builds(close_payload, WIRE_CODES, TEXT),
                st.builds(close_payload, BAD_CODES, st.just("")),
                st.just(b"\x03"),
                INVALID_UTF8.map(lambda bad: b"\x03\xe8" + bad),
            )
        )
    else:
        opcode = draw(st.sampled_from([3, 7, 11, 15]))
        payload = draw(st.binary(max_size=4))
        fin = True
    return Frame(
        opcode,
        payload,
        fin,
        rsv=draw(st.sampled_from([0] * 6 + [1, 2, 4])),
        masked=draw(st.sampled_from([None] * 6 + [True, False])),
        long_length=draw(st.sampled_from([False] * 8 + [True])),
    )


# --------------------------------------------------------------------------- the machine


class ClosingHandshake(RuleBasedStateMachine):
    """A client and a server back to back, each checked against its :class:`Endpoint`.

    Each side has a wire: the frames on their way to it, in order. What a
    side sends goes on the other's wire; the test adds frames of its own,
    as if the peer had sent them. Frames arrive when a rule says so, a few
    at a time or all at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conns: dict[str, Connection] = {}
        self.models: dict[str, Endpoint] = {}
        self.wires: dict[str, list[Frame]] = {"client": [], "server": []}

    OPTIONS: ClassVar[dict[str, st.SearchStrategy[tuple[bool, bool]]]] = {
        "defer": st.tuples(*[st.sampled_from([True, True, False])] * 2),
        "auto_pong": st.tuples(*[st.sampled_from([True, True, False])] * 2),
    }

    @initialize(**OPTIONS)
    def open(self, defer: tuple[bool, bool], auto_pong: tuple[bool, bool]) -> None:
        for i, (name, side) in enumerate((("client", Side.CLIENT), ("server", Side.SERVER))):
            self.conns[name] = Connection(
                side, max_size=MAX_SIZE, auto_pong=auto_pong[i], defer_failure=defer[i]
            )
            self.models[name] = Endpoint(name == "client", defer[i], auto_pong[i])
        self.wires = {"client": [], "server": []}

    def over(self) -> bool:
        """Both sides closed, neither holding a failure back: nothing more can happen."""
        return all(
            model.public_state() is State.CLOSED and not model.held
            for model in self.models.values()
        )

    @precondition(over)
    @rule(**OPTIONS)
    def reconnect(self, defer: tuple[bool, bool], auto_pong: tuple[bool, bool]) -> None:
        """A new pair of connections, so that the steps left are not spent on a closed one."""
        self.open(defer, auto_pong)

    # -- checking one step -------------------------------------------------------------------

    def check_output(self, side: str, expected: list[Expected]) -> None:
        """What ``side`` sent is what its model expects; it goes on the wire to the other."""
        sent = parse(b"".join(self.conns[side].data_to_send()))
        assert len(sent) == len(expected), (sent, expected)
        model = self.models[side]
        for frame, wanted in zip(sent, expected, strict=True):
            assert frame.masked is model.client  # sections 5.1 and 5.3
            if wanted.any_reason:
                assert frame.opcode == 0x8 and frame.fin and not frame.rsv
                assert frame.payload[:2] == wanted.frame.payload[:2]
                reason = frame.payload[2:].decode()  # valid UTF-8 (section 5.5.1)
                assert model.sent_close is not None
                model.sent_close = (model.sent_close[0], reason)
            else:
                assert replace(frame, masked=None) == wanted.frame
        self.wires[other(side)].extend(sent)

    def call(self, side: str, action: str, expected: list[Expected] | None, *args: object) -> None:
        """Make an application call; ``expected=None``: it must be refused, sending nothing."""
        method = getattr(self.conns[side], action)
        if expected is None:
            with pytest.raises(LocalProtocolError):
                method(*args)
            expected = []
        else:
            method(*args)
        self.check_output(side, expected)
        assert self.conns[side].events_received() == []

    def arrive(self, side: str, count: int | None = None) -> None:
        """The first ``count`` frames on the wire to ``side`` (None: all) arrive in one piece."""
        wire = self.wires[side]
        frames = wire[:count]
        del wire[: len(frames)]
        if not frames:
            return
        conn = self.conns[side]
        conn.receive_data(b"".join(serialize(frame, side == "server") for frame in frames))
        events, answers = self.models[side].receive(frames)
        assert conn.events_received() == events
        self.check_output(side, answers)

    @invariant()
    def sides_agree_with_their_models(self) -> None:
        for side, conn in self.conns.items():
            model = self.models[side]
            assert conn.state is model.public_state()
            assert conn.close_expected() is model.should_close_tcp()
            assert conn.failure_pending is model.held
            assert (conn.error.code if conn.error else None) == model.failure
            # The phase sets the asyncio layer reads, against the same model.
            assert (conn.phase in SENDING) is model.may_send()
            assert (conn.phase in CLOSE_RECEIVED) is (model.received_close is not None)
            code, reason = model.close_code()
            assert (conn.close_code, conn.close_reason) == (code, reason)
            exc = conn.closed_exception()
            sent_code, sent_reason = model.sent_close or (None, "")
            assert (exc.code, exc.reason) == (code, reason)
            assert (exc.sent_code, exc.sent_reason) == (sent_code, sent_reason)
            ok = code in NORMAL and (sent_code is None or sent_code in NORMAL)
            assert type(exc) is (ConnectionClosedOK if ok else ConnectionClosedError)

    # -- the application's calls ----------------------------------------------------------------
    # ``arrive``: what the call sent arrives at once at the other side.

    @rule(
        side=SIDES,
        kind=st.sampled_from(["text", "binary", "continuation", "ping", "pong"]),
        text=TEXT,
        data=st.one_of(BINARY, st.just(b"p" * 126)),
        fin=st.booleans(),
        arrive=st.booleans(),
    )
    def send(self, side: str, kind: str, text: str, data: bytes, fin: bool, arrive: bool) -> None:
        """A data frame, a ping or a pong."""
        model = self.models[side]
        if kind == "text":
            self.call(side, "send_text", model.send_data(0x1, text.encode(), fin), text, fin)
        elif kind == "binary":
            self.call(side, "send_binary", model.send_data(0x2, data, fin), data, fin)
        elif kind == "continuation":
            expected = model.send_data(0x0, text.encode(), fin)
            self.call(side, "send_continuation", expected, text, fin)
        else:
            expected = model.send_control(0x9 if kind == "ping" else 0xA, data)
            self.call(side, f"send_{kind}", expected, data)
        if arrive:
            self.arrive(other(side))

    @rule(
        side=SIDES,
        code=st.one_of(SEND_CODES, BAD_CODES),
        reason=REASONS,
        arrive=st.sampled_from([True, False, False]),
    )
    def send_close(self, side: str, code: int | None, reason: str, arrive: bool) -> None:
        if self.models[side].sent_close is not None and not arrive:
            return  # once is enough to see it refused; the step goes to something else
        self.call(side, "send_close", self.models[side].send_close(code, reason), code, reason)
        if arrive:
            self.arrive(other(side))

    # (Only while a failure is held back somewhere: elsewhere the call does nothing.)
    @precondition(lambda self: any(model.held for model in self.models.values()))
    @rule(side=SIDES)
    def commit_failure(self, side: str) -> None:
        self.call(side, "commit_failure", self.models[side].commit_failure())

    # The end of the TCP stream ends everything: it comes in one step of four
    # that draw it, so that sequences live long enough to reach the other
    # phases; but always while a failure is held back (a moment worth testing).
    @rule(side=SIDES, now=st.sampled_from([True, False, False, False]))
    def receive_eof(self, side: str, now: bool) -> None:
        model = self.models[side]
        if now or model.held:
            model.eof = True
            self.call(side, "receive_eof", [])

    @rule(side=SIDES)
    def toggle_defer_failure(self, side: str) -> None:
        model = self.models[side]
        model.defer_failure = self.conns[side].defer_failure = not model.defer_failure

    # -- the network ------------------------------------------------------------------------------

    @rule(side=SIDES, broken=st.sampled_from([False, False, True]), data=st.data())
    def inject(self, side: str, broken: bool, data: st.DataObject) -> None:
        """A frame from the peer of ``side`` (not from the Connection at the other end).

        A good one, or (``broken``) one that may break the protocol in one way
        or more; it arrives at once, behind what is on the wire, or waits.
        """
        if broken:
            frame = data.draw(any_frames())
        else:
            # The message the frame arrives in, once what is on the wire has arrived.
            in_message = self.models[side].in_message
            for queued in self.wires[side]:
                if queued.opcode < 3:
                    in_message = None if queued.fin else (queued.opcode or in_message)
            frame = data.draw(WELL_FORMED_FRAMES[in_message])
        self.wires[side].append(frame)
        if data.draw(st.booleans()):
            self.arrive(side)

    @rule(side=SIDES, count=st.integers(1, 3))
    def deliver(self, side: str, count: int) -> None:
        """A few of the frames on the wire to ``side`` arrive."""
        self.arrive(side, count)

    @rule()
    def flush(self) -> None:
        """Everything on both wires arrives, answers included."""
        for _ in range(3):  # a close and its echo, and nothing after: three rounds suffice
            self.arrive("client")
            self.arrive("server")


def other(side: str) -> str:
    return "server" if side == "client" else "client"


ClosingHandshake.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# A run takes seconds; shrinking a failure to its shortest form can take minutes.
TestClosingHandshake = pytest.mark.timeout(600)(ClosingHandshake.TestCase)
