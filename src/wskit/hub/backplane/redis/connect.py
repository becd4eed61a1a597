"""Where the Redis backplane finds Redis: the URLs and redis-py objects it accepts.

A :class:`~.backplane.RedisBackplane` is given one of these, and a
:class:`Connector` makes from it the backplane's client for commands,
whose pool also makes the subscriber's connection
(:mod:`~.subscriber`), so that both reach Redis the same way:

* ``redis://[[user]:password@]host[:port][/db]``: TCP;
* ``rediss://...``: TLS, with redis-py's query parameters for the
  certificates (``ssl_ca_certs=/path/ca.pem``, ``ssl_certfile``,
  ``ssl_keyfile``, ``ssl_cert_reqs=none``...);
* ``unix://[[user]:password@]/path/to/redis.sock[?db=N]``: a Unix socket;
* ``redis+sentinel://[[user]:password@]host[:port],host[:port].../service[/db]``:
  the primary of ``service`` that these sentinels name (port 26379 by
  default), asked again at each connection, so both connections follow a
  failover. The user and password are the primary's (as for ``redis://``);
  ``sentinel_username`` and ``sentinel_password`` query parameters are the
  sentinels' own, when they need one;
* ``redis+cluster://[[user]:password@]host[:port],host[:port]...``: a Redis
  Cluster (Redis 7 or later: sharded pub/sub), which these nodes (port 6379
  by default) describe; the backplane then names its keys with
  :class:`~.link.ClusterKeys` and publishes with ``SPUBLISH``;
* a redis-py client, :class:`redis.asyncio.Redis` (from a Sentinel's
  ``master_for()`` too), a :class:`redis.asyncio.Sentinel` with a
  ``service`` name, or a :class:`redis.asyncio.RedisCluster`.

Every form takes redis-py's other query parameters (``protocol=3`` for RESP3,
``client_name``...), except the timeouts, which are the backplane's own. The
backplane speaks RESP2 unless told ``protocol=3`` (in the URL, or by the
client object): redis-py reads RESP2's pub/sub messages about twice as fast
(with hiredis, 1.5 µs a message rather than 3).

The backplane's client answers bytes and does not retry by itself (the
backplane does, and tells of outages); a client object it was given stays
its owner's (the backplane makes its own connections with the same settings,
and closes only those).
"""

from __future__ import annotations

import inspect
import urllib.parse
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import ConnectionPool, SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = [
    "SENTINEL_PORT",
    "Connector",
    "masked_url",
    "parse_cluster_url",
    "parse_sentinel_url",
]

#: The port of a sentinel that a ``redis+sentinel://`` URL names without one.
SENTINEL_PORT = 26379

# What RedisCluster takes as keyword arguments (a cluster object's settings are copied).
_CLUSTER_ARGS = frozenset(inspect.signature(aioredis.RedisCluster.__init__).parameters) - {
    "self",
    "host",
    "port",
    "startup_nodes",
}

# What redis-py calls a secret, anywhere in a query string.
_SECRETS = ("password", "sentinel_password")


def masked_url(url: str) -> str:
    """``url`` with its passwords (in the authority, or a ``*password`` parameter) as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(key in _SECRETS for key, _ in query):
        hidden = [(key, "***" if key in _SECRETS else value) for key, value in query]
        parts = parts._replace(query=urllib.parse.urlencode(hidden, safe="*/"))
    return urllib.parse.urlunsplit(parts)


def _host_port(text: str, default: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, int(port) if port else default


def parse_sentinel_url(
    url: str,
) -> tuple[list[tuple[str, int]], str, dict[str, Any], dict[str, Any]]:
    """The sentinels, the service, and the keyword arguments of a ``redis+sentinel://`` URL.

    Returns:
        The sentinels' addresses; the service name; the arguments of the
        primary's connections (``username``, ``password``, ``db`` and the
        query parameters, as redis-py reads them); the arguments of the
        sentinels' connections (``sentinel_username``, ``sentinel_password``).

    Raises:
        ValueError: no sentinel, no service, or a port or db that is no number.
    """
    parts = urllib.parse.urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    try:
        sentinels = [_host_port(host, SENTINEL_PORT) for host in hosts.split(",") if host]
    except ValueError as exc:
        raise ValueError(f"{masked_url(url)}: a sentinel is host or host:port ({exc})") from None
    path = [urllib.parse.unquote(part) for part in parts.path.split("/") if part]
    if not sentinels or not path or len(path) > 2:
        raise ValueError(
            f"{masked_url(url)}: expected redis+sentinel://[user:password@]host:port,"
            "host:port.../service[/db]"
        )
    query = urllib.parse.parse_qs(parts.query)
    sentinel_kwargs: dict[str, Any] = {}
    for key in ("sentinel_username", "sentinel_password"):
        if key in query:
            sentinel_kwargs[key.removeprefix("sentinel_")] = query.pop(key)[-1]
    # redis-py reads the rest as it reads a redis:// URL's.
    rest = urllib.parse.urlencode(query, doseq=True)
    authority = f"{userinfo}@localhost" if userinfo else "localhost"
    kwargs: dict[str, Any] = dict(parse_url(f"redis://{authority}/?{rest}"))
    kwargs.pop("host", None)
    if len(path) == 2:
        if "db" in kwargs:
            raise ValueError(f"{masked_url(url)}: the db is given twice")
        try:
            kwargs["db"] = int(path[1])
        except ValueError:
            raise ValueError(f"{masked_url(url)}: the db {path[1]!r} is no number") from None
    return sentinels, path[0], kwargs, sentinel_kwargs


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The nodes and the keyword arguments of a ``redis+cluster://`` URL.

    Returns:
        The addresses of the nodes to ask for the cluster's map (port 6379
        by default); the arguments of the connections (``username``,
        ``password`` and the query parameters, as redis-py reads them).

    Raises:
        ValueError: no node, a port that is no number, or a path (a
            cluster has one database).
    """
    parts = urllib.parse.urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    try:
        nodes = [_host_port(host, 6379) for host in hosts.split(",") if host]
    except ValueError as exc:
        raise ValueError(f"{masked_url(url)}: a node is host or host:port ({exc})") from None
    if not nodes or parts.path.strip("/"):
        raise ValueError(
            f"{masked_url(url)}: expected redis+cluster://[user:password@]host:port,host:port..."
        )
    authority = f"{userinfo}@localhost" if userinfo else "localhost"
    kwargs: dict[str, Any] = dict(parse_url(f"redis://{authority}/?{parts.query}"))
    kwargs.pop("host", None)
    if kwargs.pop("db", 0):
        raise ValueError(f"{masked_url(url)}: a Redis Cluster has database 0 only")
    return nodes, kwargs


class Connector:
    """What a backplane was told about Redis, and the clients it makes from it.

    Args:
        where: a URL (see :mod:`~wskit.hub.backplane.redis.connect`), a
            :class:`redis.asyncio.Redis`, a :class:`redis.asyncio.Sentinel`
            or a :class:`redis.asyncio.RedisCluster`.
        service: the name of the primary a Sentinel watches (with a Sentinel
            object only).

    Raises:
        ValueError: a URL of another scheme, or one that does not parse.
        TypeError: an object that is none of these (a blocking client, say).
    """

    __slots__ = (
        "url",
        "_url",
        "_client",
        "_service",
        "_sentinels",
        "_cluster",
        "_kwargs",
        "_made",
        "_primary",
        "generation",
    )

    def __init__(self, where: Any, service: str | None = None) -> None:
        #: Where Redis is, as the logs and errors say it (passwords masked).
        self.url = ""
        self._url: str | None = None  # redis://, rediss://, unix://
        self._client: Any = None  # a client to copy the settings of
        self._service = service  # Sentinel: the primary's name
        self._sentinels: Any = None  # Sentinel: the addresses, or a Sentinel object
        self._cluster: list[tuple[str, int]] | None = None  # Redis Cluster: nodes to ask
        self._kwargs: dict[str, Any] = {}  # Sentinel: the primary's and the sentinels'
        self._made: list[Any] = []  # the Sentinel objects this connector made
        self._primary: tuple[Any, ...] | None = None  # Sentinel: where the primary was
        #: With Sentinel, the primary's config epoch + 1 as the sentinels last said
        #: (it grows with every failover: see :mod:`~.failover`); else 0.
        self.generation = 0
        if isinstance(where, str):
            if service is not None:
                raise ValueError("service= goes with a Sentinel object; a URL names it in its path")
            self.url = masked_url(where)
            self._of_url(where)
        elif isinstance(where, aioredis.RedisCluster):
            if service is not None:
                raise ValueError("service= goes with a Sentinel object")
            self._of_cluster(where)
        elif isinstance(where, aioredis.Sentinel):
            if not service:
                raise ValueError("a Sentinel needs the service= name of the primary to use")
            self._sentinels = where
        elif service is not None:
            raise ValueError("service= goes with a Sentinel object")
        elif isinstance(where, aioredis.Redis):
            self._of_client(where)
        else:
            raise TypeError(
                "the Redis backplane takes a URL, a redis.asyncio.Redis, a redis.asyncio."
                f"Sentinel or a redis.asyncio.RedisCluster, not {type(where).__name__}"
            )
        if isinstance(self._sentinels, aioredis.Sentinel):
            self.url = self._sentinel_url(self._sentinels, self._service or "")

    @property
    def cluster(self) -> bool:
        """Whether Redis is a Redis Cluster (the client a :class:`redis.asyncio.RedisCluster`)."""
        return self._cluster is not None

    def client(self, timeout: float) -> Any:
        """A new :class:`redis.asyncio.Redis` for the backplane's commands and its subscriber.

        On Redis Cluster, a :class:`redis.asyncio.RedisCluster`, which finds
        the cluster's map at its first command and again after an error
        (the subscriber connects to the primaries it names,
        :mod:`~.shards`).

        It answers bytes, waits ``timeout`` seconds for a connection or a
        reply, and does not retry (the backplane does). It speaks RESP2 unless
        told ``protocol=3`` (redis-py 8 would speak RESP3 by default, whose
        pushed messages it reads about half as fast). Close it with
        :meth:`aclose`.
        """
        options: dict[str, Any] = {
            "decode_responses": False,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        if self._cluster is not None:
            kwargs = {**self._kwargs.get("cluster", {}), **options}
            kwargs["protocol"] = kwargs.get("protocol") or 2
            if kwargs["protocol"] == 2:
                kwargs.pop("maint_notifications_config", None)
            nodes = [ClusterNode(host, port) for host, port in self._cluster]
            return aioredis.RedisCluster(startup_nodes=nodes, **kwargs)
        if self._url is not None:
            # The URL's own protocol=, if any, wins over this one.
            return aioredis.Redis.from_url(self._url, protocol=2, **options)
        if self._client is not None:
            pool = self._client.connection_pool
            kwargs = {**pool.connection_kwargs, **options}
            if not kwargs.get("protocol"):
                kwargs["protocol"] = 2
                # redis-py 8's maintenance notifications need RESP3: off with RESP2.
                kwargs.pop("maint_notifications_config", None)
            return aioredis.Redis(
                connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs)
            )
        sentinel = self._sentinels
        if not isinstance(sentinel, aioredis.Sentinel):
            # Made from a URL: the sentinels get the same timeouts, and no retries either.
            timeouts = {k: v for k, v in options.items() if k.startswith("socket_") or k == "retry"}
            sentinel_kwargs = {**self._kwargs.get("sentinel", {}), **timeouts}
            sentinel = aioredis.Sentinel(sentinel, sentinel_kwargs=sentinel_kwargs)
            self._made.append(sentinel)
        kwargs = {**self._kwargs.get("primary", {}), **options}
        kwargs["protocol"] = (
            kwargs.get("protocol") or sentinel.connection_kwargs.get("protocol") or 2
        )
        return sentinel.master_for(self._service or "", **kwargs)

    async def follow(self, client: Any) -> None:
        """With Sentinel, ask the sentinels where the primary is (the backplane does, each beat).

        When it moved, every connection of ``client`` is closed, those in use
        too (they would go back to the pool, and on to the old primary, which
        keeps serving its clients until the sentinels turn it into a replica):
        the next command connects to the new one. The subscriber leaves it at
        its next ping (:meth:`.Subscriber.ping`). Without Sentinel, it does
        nothing.
        """
        pool: Any = getattr(client, "connection_pool", None)  # a RedisCluster has none
        if not isinstance(pool, SentinelConnectionPool):
            return
        primary = tuple(await pool.get_master_address())  # type: ignore[no-untyped-call]
        # Learnt before the move below: the writes that follow it carry it. A
        # sentinel that does not answer now does not keep the node from moving.
        try:
            state = await pool.sentinel_manager.sentinels[0].sentinel_master(pool.service_name)
        except RedisError:
            state = {}
        self.generation = max(self.generation, int(state.get("config-epoch", -1)) + 1)
        if self._primary is not None and primary != self._primary:
            await pool.disconnect(inuse_connections=True)
        self._primary = primary

    async def aclose(self, client: Any) -> None:
        """Close ``client`` (made by :meth:`client`), and the sentinels made with it."""
        made, self._made = self._made, []
        await client.aclose()
        for sentinel in made:
            for node in sentinel.sentinels:
                await node.aclose()

    def _of_url(self, url: str) -> None:
        scheme = url.partition("://")[0].lower()
        if scheme in ("redis", "rediss", "unix"):
            parse_url(url)  # its errors now rather than at start()
            self._url = url
        elif scheme == "redis+sentinel":
            sentinels, service, kwargs, sentinel_kwargs = parse_sentinel_url(url)
            self._sentinels, self._service = sentinels, service
            self._kwargs = {"primary": kwargs, "sentinel": sentinel_kwargs}
        elif scheme == "redis+cluster":
            self._cluster, kwargs = parse_cluster_url(url)
            self._kwargs = {"cluster": kwargs}
        else:
            raise ValueError(
                f"{self.url}: a Redis URL starts with redis://, rediss://, unix://, "
                "redis+sentinel:// or redis+cluster://"
            )

    def _of_cluster(self, client: Any) -> None:
        manager = client.nodes_manager
        nodes = manager.nodes_cache or manager.startup_nodes
        self._cluster = [(node.host, int(node.port)) for node in nodes.values()]
        settings = client.get_connection_kwargs()
        kwargs = {key: value for key, value in settings.items() if key in _CLUSTER_ARGS}
        kwargs.pop("retry", None)
        if issubclass(settings.get("connection_class", object), SSLConnection):
            kwargs["ssl"] = True
        self._kwargs = {"cluster": kwargs}
        hosts = ",".join(f"{host}:{port}" for host, port in self._cluster)
        self.url = f"redis+cluster://{hosts}"

    def _of_client(self, client: Any) -> None:
        pool = client.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            # Always the primary, even for a client of a replica: the backplane writes.
            self._sentinels, self._service = pool.sentinel_manager, pool.service_name
            primary = {k: v for k, v in pool.connection_kwargs.items() if k != "connection_pool"}
            self._kwargs = {"primary": primary}
            return
        self._client = client
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            self.url = f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
        else:
            tls = issubclass(pool.connection_class, aioredis.SSLConnection)
            host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
            self.url = f"{'rediss' if tls else 'redis'}://{host}:{port}/{kwargs.get('db', 0)}"

    @staticmethod
    def _sentinel_url(sentinel: Any, service: str) -> str:
        hosts = []
        for node in sentinel.sentinels:
            kwargs = node.connection_pool.connection_kwargs
            hosts.append(f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', SENTINEL_PORT)}")
        return f"redis+sentinel://{','.join(hosts)}/{service}"
