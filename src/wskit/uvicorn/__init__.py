"""wskit as uvicorn's WebSocket implementation: ``--ws wskit.uvicorn:WebSocketProtocol``.

Run any ASGI application (plain ASGI, Starlette, FastAPI, wskit's own
:func:`~wskit.asgi.asgi_app`) under uvicorn with wskit's protocol core and
bounds in place of uvicorn's built-in WebSocket layers::

    uvicorn app:app --ws wskit.uvicorn:WebSocketProtocol

or from Python, ``uvicorn.run(app, ws="wskit.uvicorn:WebSocketProtocol")``
(``ws=WebSocketProtocol``, the class itself, works too).

Theory of operation
===================

uvicorn's HTTP layer (h11 or httptools) reads the request head. When it is
an upgrade to ``websocket``, uvicorn builds the class given to ``--ws`` with
``config``, ``server_state`` and ``app_state``, calls ``connection_made``,
hands the transport over (``transport.set_protocol``) and replays the
request head with ``data_received``. From there the connection is ours.

:class:`WebSocketProtocol` is a :class:`wskit.asyncio.connection.Conn`, the
connection of wskit's own server: the same receive path, send path,
receive queue and its backpressure, write-buffer bounds, keepalive and
closing. What it adds is the ASGI side, in three stages (:class:`Stage`):

* ``HANDSHAKE``: the request head is parsed and checked
  (:func:`~wskit.protocol.handshake.server_handshake`, no origin policy: the
  application decides), the scope built, and the application started; its
  first ``receive()`` gets ``websocket.connect``. It answers with
  ``websocket.accept`` (the 101 goes out, the WebSocket opens),
  ``websocket.close`` (403) or ``websocket.http.response.start`` (a denial
  response of its own).
* ``ACCEPTED``: ``receive()`` takes messages from the connection's queue
  (``websocket.receive``), ``send()`` writes ``websocket.send`` frames.
* ``RESPONSE``: the denial response's body is due; ``CLOSED``: the
  application closed, was denied, or the server shut the connection down;
  ``receive()`` answers ``websocket.disconnect`` (after the messages
  already queued, when the application closed).

Behaviour follows uvicorn's built-in implementations wherever uvicorn
defines it (its own WebSocket test suite passes against this class, behind
both of its HTTP layers, h11 and httptools):

* ``websocket.disconnect``: ``{"code", "reason"}`` of the peer's close frame;
  of ours when the application closed or wskit failed the connection (1009
  for a message over ``ws_max_size``, 1002, 1007, 1011 on a keepalive
  timeout); ``{"code": 1012}`` on server shutdown; ``{"code": 1005}`` when
  the connection was lost without a close frame after the accept (no code
  was received: the ASGI specification's rule, and what uvicorn's
  ``websockets-sansio`` and ``wsproto`` classes report); ``{"code": 1006}``
  when it was denied, or lost before the application answered.
* An exception in the application, or an application that returns without
  answering, before the handshake: ``500 Internal Server Error``. After it:
  the TCP connection is closed without a close frame (the client sees
  1006), as uvicorn does; messages already sent are delivered first.
* ``send()`` once the connection is lost raises uvicorn's
  ``ClientDisconnected`` (an :class:`OSError`); after the application's own
  ``websocket.close`` it raises :class:`RuntimeError`, as does a message out
  of order (its text names what was expected and what came).
* Server shutdown (``shutdown()``, called by uvicorn) closes open
  WebSockets with 1012 (service restart), as uvicorn's classes do;
  :class:`WebSocketProtocol1001` closes with 1001 (going away) instead, and
  a subclass of your own may set :attr:`~WebSocketProtocol.shutdown_code`
  and :attr:`~WebSocketProtocol.shutdown_reason`.

uvicorn's options
=================

``ws_max_size`` (default 16 MiB) is the connection's ``max_size``: a larger
message, compressed or not, fragmented or not, fails with 1009 as soon as
its frame header says so. ``ws_max_queue`` (32) bounds the receive queue in
messages, ``ws_max_size`` in bytes; past either, reading pauses until the
application has taken messages out, so a client cannot make the server
buffer what the application does not read. ``ws_ping_interval`` and
``ws_ping_timeout`` (20 s each; 0 or ``None`` turns pings off) drive the
keepalive (1011 on a timeout), whose state reads as on uvicorn's classes:
:attr:`~WebSocketProtocol.ping_timer`,
:attr:`~WebSocketProtocol.ping_sent_at`,
:attr:`~WebSocketProtocol.last_ping_rtt`. ``ws_per_message_deflate`` turns
permessage-deflate on (with 12-bit windows and ``memLevel`` 5, as uvicorn
chooses, see :attr:`WebSocketProtocol.deflate_options`) or off. The
``Server`` and ``Date`` headers (``--no-server-header``,
``--no-date-header``, ``--header``) come from uvicorn's default headers,
``root_path`` and the proxy headers (``--proxy-headers``,
``--forwarded-allow-ips``: uvicorn's middleware rewrites the scope's
``client`` and ``scheme``) apply as for HTTP.

wskit's bounds apply on top: the per-frame checks of
:class:`~wskit.protocol.connection.Connection` (fragments, control frames,
UTF-8, decompression), pongs held back while the write buffer is full, and
the write buffer's high-water mark (64 KiB) above which ``send()`` waits.

What stays uvicorn's: the request head is read by uvicorn's HTTP layer
before this class exists, so slow or oversized request heads (slowloris)
are bounded by uvicorn (``--timeout-keep-alive``, h11's
``--h11-max-incomplete-event-size``), not by wskit's handshake limits.

The package, one job per module:

* ``wskit.uvicorn.protocol``: :class:`WebSocketProtocol` and
  :class:`WebSocketProtocol1001`, the classes ``--ws`` names;
* ``wskit.uvicorn.scope``: the ASGI side as uvicorn shapes it: the
  connection's :class:`Stage`, the scope, the ``websocket.disconnect``
  events and the access log lines.
"""

from .protocol import WebSocketProtocol, WebSocketProtocol1001
from .scope import Stage

__all__ = ["WebSocketProtocol", "WebSocketProtocol1001", "Stage"]
