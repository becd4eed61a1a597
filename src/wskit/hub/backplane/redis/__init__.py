"""The Redis backplane: many hub processes on many machines share rooms through Redis.

``Hub(backplane="redis://127.0.0.1:6379/0")`` or
``Hub(backplane=RedisBackplane(url, prefix="chat"))``; it needs the
``redis`` package (``pip install 'wskit[redis]'``), redis-py's asyncio client,
and uses hiredis, redis-py's C reply parser, when it is installed (the
extra brings it).

Where Redis is
==============

The backplane reaches Redis through redis-py, for its commands and for its
subscriber alike, so every form below works in both directions:

* ``redis://[[user]:password@]host[:port][/db]``: TCP (an ACL user with its
  password, or the password alone);
* ``rediss://...``: TLS, with redis-py's query parameters for the
  certificates: ``ssl_ca_certs=/path/ca.pem``, ``ssl_certfile`` and
  ``ssl_keyfile`` (a client certificate), ``ssl_cert_reqs=none``...;
* ``unix://[[user]:password@]/path/to/redis.sock[?db=N]``: a Unix socket;
* ``redis+sentinel://[[user]:password@]host[:port],host[:port].../service[/db]``:
  the primary that these sentinels (port 26379 by default) name for
  ``service``. The user and password are the primary's, as in
  ``redis://``; ``sentinel_username`` and ``sentinel_password`` query
  parameters are the sentinels' own, when they need one. Every heartbeat
  the node asks the sentinels where the primary is; when it moved, the
  node closes its connections to the old one (which keeps serving until the
  sentinels turn it into a replica) and connects to the new one;
* ``redis+cluster://[[user]:password@]host[:port],host[:port]...``: a Redis
  Cluster (Redis 7 or later), which any of these nodes describes (see
  "Redis Cluster" below);
* a redis-py object: ``RedisBackplane(redis.asyncio.Redis(...))`` (a
  Sentinel's ``master_for()`` too),
  ``RedisBackplane(redis.asyncio.Sentinel([...]), service="mymaster")``, or
  ``RedisBackplane(redis.asyncio.RedisCluster(...))``.
  The backplane makes its own connections with the object's settings
  (address, credentials, TLS, protocol, parser) and its own timeouts; the
  object stays its owner's to close.

Every form takes redis-py's other query parameters (``protocol=3``,
``client_name=...``) besides the backplane's own (``prefix=``...). The
backplane speaks RESP2 unless ``protocol=3`` is asked for: redis-py reads
RESP2's messages about twice as fast. Passwords are masked (``***``) in
every log record and error.

Theory of operation
===================

Channels and keys (``P`` is the prefix, ``"wskit"`` by default):

* ``P:room:NAME``: the emits to room ``NAME`` (and its presence events).
  A node subscribes to it only while the room has local members.
* ``P:client:ID``: emits to one client, and calls for its node; each node
  subscribes to the channels of its own clients.
* ``P:all``: emits to everyone, and calls to every node.
* ``P:node:ID``: the answers to this node's calls.
* ``P:hist:NAME`` / ``P:meta:NAME`` (``P:hist-all`` / ``P:meta-all``): the
  stream of a room's messages and its epoch and last offset, with recovery
  on only; ``P:session:ID``,
  ``P:presence:ROOM``, ``P:alive:NODE``, ``P:nodes``, ``P:node-rooms:NODE``.

Recovery off (the default): an emit to a room (or to everyone) is one
``PUBLISH``, and nothing stays in Redis. A node delivers a room message to
its members when it comes back on the channel, its own included, in the
order Redis gives, at most once: a message lost (Redis failed, or the
node's subscription was down) is not read back. Each node numbers its
messages per channel, so the others see a gap in its numbers: they count
the messages missed in ``stats.lost`` and log them (rate-limited). A
message published again after an outage carries the sequence number it had,
and a node that had it drops it.

Recovery on (``Hub(recovery=...)``): one stream per room. An emit to a room
(or to everyone) runs one Lua script
that takes the next offset of the room, appends the message to the room's
stream (``XADD``, ``MAXLEN`` bounded, the keys expiring when the room is idle)
and publishes it with its offset, atomically: every node sees a room's
messages in the same order, numbered without gaps. A node delivers a room
message to its members when it comes back on the channel, its own included,
in offset order: a message whose offset leaves a gap makes the node read the
missing ones from the stream first; one it already has is dropped. So a node
whose subscription was down (Redis restarted, the network failed) catches up
from the stream when it comes back, and the hub encodes each message once per
node. The script also remembers the last sequence number of each publishing
node per room, so a publish retried after a lost answer is not applied twice.
An emit to one client is a plain ``PUBLISH`` (written at once when the
client is local). A failover can lose the last writes of the old primary
(Redis replicates asynchronously): with Sentinel, a room's first write after
one starts a new epoch, unless ``wait_replicas`` confirms each write with
``WAIT`` (and publishes again what it did not confirm); a node that finds a
stream without messages it delivered starts a new epoch too. A client that
recovers across a lost write gets ``recovered`` false, never a replay with a
hole (``failover``).

Outages: every command goes through one ordered outbox, at most ``buffer``
messages long. While Redis cannot be reached (either connection) the node
delivers its own room and global emits to its local clients at once, keeps
them in the outbox, and publishes them when Redis is back (then, when they
come back on the channel, it does not deliver them again: messages carry the
node id and a sequence number). Past ``buffer`` the oldest waiting message is
dropped, counted in ``stats.dropped``. Both connections come back with
exponential backoff; the subscriber subscribes again to everything (and
with recovery on catches up from the streams). ``stats`` counts what was
sent, published, delivered, dropped and lost (a gap the stream could not
fill, or with recovery off any gap, logged too).
An outage is one WARNING when it begins and one INFO when it ends, with the
messages buffered and dropped meanwhile (``outage``); each failed
attempt to reconnect is a DEBUG record.

At start, the node waits ``start_timeout`` seconds (3) for both connections.
A Redis it cannot reach by then is an error,
:class:`~wskit.hub.backplane.BackplaneUnavailable`, that names the URL (its
password masked), so a hub does not serve cut off from its cluster; with
``degraded_start=True`` (or ``?degraded_start=1`` in the URL) one WARNING
says so instead, and the node serves its local clients as during an outage
until Redis comes.

Presence: each node keeps ``P:alive:NODE`` alive (``heartbeat``, expiring
after ``node_ttl``); entries of a node whose key expired are ignored at once
and removed (with leave events) by the next sweep of any node.

Calls (``hub.cluster``): a request is published on ``P:all`` (or on the
client's channel, whose one subscriber is its node); ``PUBLISH`` says how many
nodes got it, and the caller waits for that many answers on ``P:node:ID``,
at most the timeout.

Redis Cluster
=============

On a cluster every publish is sharded (``SPUBLISH``, and the subscriber
subscribes with ``SSUBSCRIBE``): a message goes to the primary that owns
its channel's hash slot and to that primary's subscribers only, so the
primaries share
the traffic rather than each carrying all of it, as a classic ``PUBLISH``
broadcast over the cluster bus would have them do. The names change
(``link.ClusterKeys``):

* each room's channel and keys carry the room as their hash tag
  (``P:room:{NAME}``, ``P:meta:{NAME}``, ``P:hist:{NAME}``,
  ``P:presence:{NAME}``): one slot per room, so that with recovery on the
  script and the stream of a room stay atomic, and the rooms spread over
  the primaries by the hash of their names;
* an emit to one client goes to its channel, ``P:client:{ID}``, on the
  primary of the client's slot (clients spread too);
* global emits, calls (``hub.cluster``) and their answers, presence
  liveness and sessions are on one slot, the prefix's: ``{P}:all``,
  ``{P}:node:ID``, ``{P}:alive:NODE``... A global emit is one ``SPUBLISH``
  (or one script) on that slot's primary, which every node listens to;
  a call counts its answers from what ``SPUBLISH`` says there.

The prefix must not contain braces. The subscriber is one connection per
primary that owns a slot of this node's channels (``shards``). A
primary that fails (its replica promoted after ``cluster-node-timeout``),
a ``MOVED`` answer, or a slot given away makes the node read the cluster's
map again and subscribe where the channels are now; meanwhile it counts as
disconnected (an outage, as above: its own emits reach its local clients
and wait in the outbox). Redis replicates asynchronously and does not
replicate a publish to the promoted replica's subscribers before the
failover: what was in flight may be lost. With recovery off the receivers
count it in ``stats.lost`` (the gap in the sender's numbers); with
recovery on they read it from the stream when the stream's write reached
the replica, and count what it does not hold.

The parts
=========

:class:`RedisBackplane` (``backplane``) answers the hub and owns the
parts, which share a ``link.Link`` (the names of the keys, the hub,
the client for commands, the counters, the background tasks):

* ``outbox``: every command in one ordered outbox, the loop that sends
  it in pipelines, the Lua script (``publish.lua``), and the echoes of this
  node's own messages it waits for;
* ``receiver``: the subscriber's loop, applying numbered messages in
  order, and the catch-up from the streams (``streams``: the cursors,
  reading a stream back, the history for recovery);
* ``subscriber``: the subscriber connection, one redis-py connection made
  by the command client's pool, read without a timeout per message (pings
  every heartbeat tell a Redis that stopped answering); on Redis Cluster,
  ``shards``: one per primary, following the cluster's map;
* ``connect``: the URLs and redis-py objects above, made into the client;
* ``presence``: presence entries, the node's liveness beat (which the
  backplane's heartbeat loop makes), the sweep of dead nodes;
* ``calls``: node-to-node calls and their answers;
* ``outage``: the records that tell of an outage, with its counts;
* ``failover``: ``WAIT`` after the stream writes, and the new epoch of a
  stream a failover left without what the nodes delivered (``fence.lua``).
"""

from .backplane import RedisBackplane

__all__ = ["RedisBackplane"]
