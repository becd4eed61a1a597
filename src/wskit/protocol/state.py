"""The closing handshake as one state machine (RFC 6455 section 7), as data.

Theory of operation
===================

A WebSocket connection, once open, has one thing left to do: end. How it
ends is the whole of section 7, and this module holds all of it. A
:class:`~wskit.protocol.connection.Connection` keeps exactly one state
variable, its :class:`Phase`, and changes it in exactly one way: by looking
up ``(phase, trigger)`` in :data:`TRANSITIONS`. Nothing else decides what may
be sent, what is still parsed, whether a close frame goes out, or when the
TCP connection should be closed: every such question is a question about
the phase, answered by the table or by a named set of phases.

The eight triggers are what can happen to a connection: the application
sends a frame or a close frame; the peer's frames, its close frame, or a
frame that breaks the protocol arrive; the application commits a failure
held back; the TCP stream ends (EOF).

The main paths::

                 send_close()             close frame received
        OPEN ──────────────────▶ CLOSING ────────────────────▶ CLOSE_EXCHANGED
         │ │                        │                             ▲       │
         │ └──── close frame received, echoed at once ────────────┘       │ EOF
         │                          │ protocol error                      ▼
         │ protocol error           ▼                                   ENDED
         ├─────────────────────▶ FAILED
         │                          ▲ commit_failure() or send_close()
         │ protocol error,          │ (the peer's error code wins)
         │ defer_failure on         │
         └─────────────────────▶ FAILING

and the TCP stream can end in any phase::

        OPEN ─EOF─▶ LOST
        FAILING ─EOF─▶ LOST_FAILING ─commit_failure() or send_close()─▶ LOST_CLOSING
        CLOSING or FAILED ─EOF─▶ LOST_CLOSING
        CLOSE_EXCHANGED ─EOF─▶ ENDED (the normal end)

Three rules ride on the phases rather than on the arrows:

* **Close frames.** :data:`CLOSE_SENT` holds the phases in which our close
  frame is out. A transition from a phase outside it into one inside it
  sends a close frame: the application's on ``send_close()``, the echo of
  the peer's code on a close frame received (section 5.5.1), the error's
  code when a failure is committed (section 7.1.7). So a close frame goes
  out once, and nothing is sent after it.
* **TCP.** In the phases of :data:`CLOSE_TCP_NOW` the I/O layer closes the
  TCP connection now. In ``CLOSE_EXCHANGED`` only the server does: it closes
  first (section 7.1.1), and the client waits for that EOF.
* **The public state.** Applications see three states, :class:`State`;
  :data:`PUBLIC_STATE` maps each phase to one. A held-back failure is still
  ``OPEN`` (the application may answer what arrived before the bad frame);
  every phase after the closing handshake or the TCP stream ended is
  ``CLOSED``. ``OPEN`` is exactly the set of phases in which frames may be
  sent, :data:`SENDING`.

The table in full (a missing pair is refused: sending raises
:class:`~wskit.exceptions.LocalProtocolError`, received bytes are dropped
as section 5.5.1 prescribes, ``commit_failure()`` does nothing)::

    phase            trigger          new phase         close frame sent
    ---------------  ---------------  ----------------  ----------------
    OPEN             SEND_FRAME       OPEN
                     RECEIVE_FRAME    OPEN
                     SEND_CLOSE       CLOSING           ours
                     RECEIVE_CLOSE    CLOSE_EXCHANGED   the echo
                     FAIL             FAILED            the error's
                     FAIL_DEFERRED    FAILING
                     RECEIVE_EOF      LOST
    FAILING          SEND_FRAME       FAILING
                     SEND_CLOSE       FAILED            the error's
                     COMMIT_FAILURE   FAILED            the error's
                     RECEIVE_EOF      LOST_FAILING
    CLOSING          RECEIVE_FRAME    CLOSING
                     RECEIVE_CLOSE    CLOSE_EXCHANGED
                     FAIL             FAILED
                     FAIL_DEFERRED    FAILED            (ours is out: nothing to hold back)
                     RECEIVE_EOF      LOST_CLOSING
    CLOSE_EXCHANGED  RECEIVE_EOF      ENDED
    FAILED           RECEIVE_EOF      LOST_CLOSING
    LOST             RECEIVE_EOF      LOST
    LOST_FAILING     SEND_CLOSE       LOST_CLOSING      the error's
                     COMMIT_FAILURE   LOST_CLOSING      the error's
                     RECEIVE_EOF      LOST_FAILING
    LOST_CLOSING     RECEIVE_EOF      LOST_CLOSING
    ENDED            RECEIVE_EOF      ENDED

What the close codes were (``close_sent``, ``close_rcvd``, ``error``) are
the connection's outcome, kept beside the phase; no decision reads them.
The phase machine knows nothing of sides (client or server) but the one
TCP rule above, and nothing of frames but these triggers; fragmentation of
outgoing and incoming messages is the connection's own business.
"""

from __future__ import annotations

import enum

__all__ = [
    "State",
    "Phase",
    "Trigger",
    "TRANSITIONS",
    "PUBLIC_STATE",
    "SENDING",
    "RECEIVING",
    "FAILURE_HELD",
    "CLOSE_SENT",
    "CLOSE_RECEIVED",
    "CLOSE_TCP_NOW",
]


class State(enum.IntEnum):
    """Where the connection is in its life, as applications see it (the handshake is done).

    A view of the finer :class:`Phase`; see :data:`PUBLIC_STATE`.
    """

    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Phase(enum.Enum):
    """Where the connection is in its closing handshake: the one state variable.

    Compare with ``is``: the hot paths test ``phase is Phase.OPEN`` first.
    """

    #: Frames flow both ways.
    OPEN = enum.auto()
    #: The peer broke the protocol; our failing close frame is held back
    #: (``defer_failure``) while the application answers what came before.
    FAILING = enum.auto()
    #: Our close frame is out; the peer's is awaited (frames are still read).
    CLOSING = enum.auto()
    #: Both close frames crossed; TCP is closed next, by the server.
    CLOSE_EXCHANGED = enum.auto()
    #: We failed the connection: our close frame is out, TCP is closed now.
    FAILED = enum.auto()
    #: The TCP stream ended before any close frame of ours (1006).
    LOST = enum.auto()
    #: The TCP stream ended while a failure was held back.
    LOST_FAILING = enum.auto()
    #: The TCP stream ended after our close frame, without the peer's (1006).
    LOST_CLOSING = enum.auto()
    #: The TCP stream ended after the close frames crossed: the normal end.
    ENDED = enum.auto()


class Trigger(enum.Enum):
    """What can happen to a connection: the inputs of :data:`TRANSITIONS`."""

    #: The application sends a data frame, a ping or a pong (auto-pongs too).
    SEND_FRAME = enum.auto()
    #: Received bytes are to be parsed.
    RECEIVE_FRAME = enum.auto()
    #: The application sends a close frame (``send_close()``).
    SEND_CLOSE = enum.auto()
    #: The peer's close frame arrived.
    RECEIVE_CLOSE = enum.auto()
    #: A received frame broke the protocol: fail now (section 7.1.7).
    FAIL = enum.auto()
    #: A received frame broke the protocol, with ``defer_failure`` on.
    FAIL_DEFERRED = enum.auto()
    #: The application lets a held-back failure's close frame go (``commit_failure()``).
    COMMIT_FAILURE = enum.auto()
    #: The peer closed the TCP stream (``receive_eof()``).
    RECEIVE_EOF = enum.auto()


_P = Phase
_T = Trigger

TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {
    (_P.OPEN, _T.SEND_FRAME): _P.OPEN,
    (_P.OPEN, _T.RECEIVE_FRAME): _P.OPEN,
    (_P.OPEN, _T.SEND_CLOSE): _P.CLOSING,
    (_P.OPEN, _T.RECEIVE_CLOSE): _P.CLOSE_EXCHANGED,
    (_P.OPEN, _T.FAIL): _P.FAILED,
    (_P.OPEN, _T.FAIL_DEFERRED): _P.FAILING,
    (_P.OPEN, _T.RECEIVE_EOF): _P.LOST,
    (_P.FAILING, _T.SEND_FRAME): _P.FAILING,
    (_P.FAILING, _T.SEND_CLOSE): _P.FAILED,
    (_P.FAILING, _T.COMMIT_FAILURE): _P.FAILED,
    (_P.FAILING, _T.RECEIVE_EOF): _P.LOST_FAILING,
    (_P.CLOSING, _T.RECEIVE_FRAME): _P.CLOSING,
    (_P.CLOSING, _T.RECEIVE_CLOSE): _P.CLOSE_EXCHANGED,
    (_P.CLOSING, _T.FAIL): _P.FAILED,
    (_P.CLOSING, _T.FAIL_DEFERRED): _P.FAILED,
    (_P.CLOSING, _T.RECEIVE_EOF): _P.LOST_CLOSING,
    (_P.CLOSE_EXCHANGED, _T.RECEIVE_EOF): _P.ENDED,
    (_P.FAILED, _T.RECEIVE_EOF): _P.LOST_CLOSING,
    (_P.LOST, _T.RECEIVE_EOF): _P.LOST,
    (_P.LOST_FAILING, _T.SEND_CLOSE): _P.LOST_CLOSING,
    (_P.LOST_FAILING, _T.COMMIT_FAILURE): _P.LOST_CLOSING,
    (_P.LOST_FAILING, _T.RECEIVE_EOF): _P.LOST_FAILING,
    (_P.LOST_CLOSING, _T.RECEIVE_EOF): _P.LOST_CLOSING,
    (_P.ENDED, _T.RECEIVE_EOF): _P.ENDED,
}
"""``(phase, trigger) -> new phase``; a pair that is missing is refused."""


def _allowing(trigger: Trigger) -> frozenset[Phase]:
    """The phases in which ``trigger`` is allowed, read from the table."""
    return frozenset(phase for phase, allowed in TRANSITIONS if allowed is trigger)


SENDING = _allowing(Trigger.SEND_FRAME)
"""The phases in which frames may be sent (``OPEN`` and ``FAILING``)."""

RECEIVING = _allowing(Trigger.RECEIVE_FRAME)
"""The phases in which received bytes are parsed (``OPEN`` and ``CLOSING``)."""

FAILURE_HELD = _allowing(Trigger.COMMIT_FAILURE)
"""The phases with a failure whose close frame is held back (``failure_pending``)."""

CLOSE_SENT = frozenset({_P.CLOSING, _P.CLOSE_EXCHANGED, _P.FAILED, _P.LOST_CLOSING, _P.ENDED})
"""The phases in which our close frame is out; entering one from outside sends it."""

CLOSE_RECEIVED = frozenset({_P.CLOSE_EXCHANGED, _P.ENDED})
"""The phases in which the peer's close frame has arrived."""

CLOSE_TCP_NOW = frozenset({_P.FAILED, _P.LOST, _P.LOST_FAILING, _P.LOST_CLOSING, _P.ENDED})
"""The phases in which either side closes TCP now (the server also in ``CLOSE_EXCHANGED``)."""

PUBLIC_STATE: dict[Phase, State] = {
    _P.OPEN: State.OPEN,
    _P.FAILING: State.OPEN,
    _P.CLOSING: State.CLOSING,
    _P.CLOSE_EXCHANGED: State.CLOSED,
    _P.FAILED: State.CLOSED,
    _P.LOST: State.CLOSED,
    _P.LOST_FAILING: State.CLOSED,
    _P.LOST_CLOSING: State.CLOSED,
    _P.ENDED: State.CLOSED,
}
"""The :class:`State` applications see in each phase."""
