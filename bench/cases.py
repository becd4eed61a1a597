"""What the benchmark runs: the servers under test and the workloads (B1-B5).

The hub cases (``B1-hub-64``, ``B3-hub-1k``, ``B3-hub-10k``) run only on the
hub server (``wskit-hub``), which speaks ws-wrapper events; B8 (``B8-64``)
runs only on the ``uvicorn-*`` servers, one FastAPI app under uvicorn with
each ``--ws`` choice; B7 runs only on the servers it names (``Case.peers``:
the hub and python-socketio, each as a cluster of processes on Redis); every
other case runs on every other server. Each hub case names the figure of a
plain server it is held against (its :class:`Goal`).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = BENCH / ".build"
LOADGEN = BUILD / "loadgen"
GORILLA_SERVER = BUILD / "gorilla-server"
NODE_CLIENT = BENCH / "loadgen" / "ws_client.mjs"
DOCS = BUILD / "b5_docs.json"
PYTHON_LOOPS = ("asyncio", "uvloop")


@dataclass(frozen=True)
class Server:
    """One server under test."""

    name: str
    kind: str  # "python", "node" or "go"
    target: str  # module (python) or script/binary path
    compression: bool  # can it negotiate permessage-deflate (B5)?
    note: str = ""
    #: Speaks ws-wrapper events (the hub): runs the hub cases and only those.
    hub: bool = False
    #: Where its ``wskit`` comes from when not the working tree (``--baseline``):
    #: put first on ``PYTHONPATH``.
    pythonpath: str | None = None
    #: The server this one is a baseline copy of (``wskit`` for ``wskit@abc1234``).
    base_of: str | None = None
    #: A FastAPI app under uvicorn (B8): runs the uvicorn cases and only those.
    uvicorn: bool = False
    #: More command-line arguments (B8: uvicorn's ``--ws`` choice).
    options: tuple[str, ...] = ()
    #: Python packages it needs besides its own module's (``available``).
    requires: tuple[str, ...] = ()
    #: Runs only the cases that name it in ``Case.peers`` (B7's python-socketio).
    named_only: bool = False

    def label(self, loop: str | None) -> str:
        return f"{self.name}/{loop}" if self.kind == "python" and loop else self.name

    def argv(self, python: str, port: int, compression: bool, loop: str | None) -> list[str]:
        if self.kind == "python":
            argv = [python, "-m", self.target, "--port", str(port), "--loop", loop or "asyncio"]
        elif self.kind == "node":
            argv = ["node", self.target, "--port", str(port)]
        else:
            argv = [self.target, "--port", str(port)]
        if compression:
            argv.append("--compression")
        return [*argv, *self.options]

    def available(self) -> str | None:
        """``None`` when the server can run here, else why not."""
        if self.kind == "python":
            top = self.target.rsplit(".", 1)[-1].removesuffix("_server")
            needs = {
                "picows_ws": "picows.websockets",
                "wskit_hub": "wskit.hub",
                "wskit_callback": "wskit",
            }.get(top, top)
            for package in (needs, *self.requires):
                try:
                    found = importlib.util.find_spec(package) is not None
                except ModuleNotFoundError:
                    found = False
                if not found:
                    return f"python package {package} is not installed"
            return None
        if self.kind == "node":
            if shutil.which("node") is None:
                return "node is not installed"
            if not (ROOT / "node_modules" / "ws").is_dir():
                return "node_modules/ws is missing (npm ci)"
            return None
        return None if Path(self.target).exists() else f"{self.target} is not built"


SERVERS: tuple[Server, ...] = (
    Server("wskit", "python", "bench.servers.wskit_server", True),
    Server(
        "wskit-cb",
        "python",
        "bench.servers.wskit_callback_server",
        True,
        "Conn.on_message, the callback path",
    ),
    Server("websockets", "python", "bench.servers.websockets_server", True),
    Server("aiohttp", "python", "bench.servers.aiohttp_server", True),
    Server(
        "picows",
        "python",
        "bench.servers.picows_server",
        False,
        "callback API; no permessage-deflate",
    ),
    Server(
        "picows-ws",
        "python",
        "bench.servers.picows_ws_server",
        True,
        "picows.websockets, the websockets-compatible API",
    ),
    Server("node-ws", "node", str(BENCH / "servers" / "ws_server.mjs"), True),
    Server("gorilla", "go", str(GORILLA_SERVER), True, "no context takeover"),
    Server(
        "wskit-hub",
        "python",
        "bench.servers.wskit_hub_server",
        True,
        "wskit.hub.Hub, ws-wrapper events",
        hub=True,
    ),
    Server(
        "socketio",
        "python",
        "bench.servers.socketio_server",
        False,
        "python-socketio AsyncServer on aiohttp, AsyncRedisManager",
        requires=("aiohttp", "redis"),
        named_only=True,
    ),
    *(
        Server(
            f"uvicorn-{name}",
            "python",
            "bench.servers.uvicorn_server",
            True,
            f"FastAPI under uvicorn --ws {ws}",
            uvicorn=True,
            options=("--ws", ws),
            requires=("fastapi", *needs),
        )
        for name, ws, needs in (
            ("wskit", "wskit.uvicorn:WebSocketProtocol", ("wskit",)),
            ("websockets", "websockets", ("websockets",)),
            ("websockets-sansio", "websockets-sansio", ("websockets",)),
            ("wsproto", "wsproto", ("wsproto",)),
        )
    ),
)
#: B8's server whose figures are divided by the other uvicorn servers'.
UVICORN_WSKIT = "uvicorn-wskit"


@dataclass(frozen=True)
class Metric:
    key: str  # key in the client's RESULT json (or the runner's own figures)
    label: str
    fmt: str  # format spec for the value
    higher_better: bool = True


RT = Metric("rt_per_s", "round trips/s", ",.0f")
P50 = Metric("p50_us", "p50 µs", ",.0f", higher_better=False)
P99 = Metric("p99_us", "p99 µs", ",.0f", higher_better=False)
MBS = Metric("mb_per_s", "MB/s", ",.1f")
DPS = Metric("deliveries_per_s", "deliveries/s", ",.0f")
LAST = Metric("last_ms", "last ms", ",.0f", higher_better=False)
FIRST_ALL = Metric("first_msg_all_ms", "1st msg all ms", ",.1f", higher_better=False)
REDIS_CMDS = Metric("redis_cmds_per_emit", "redis cmds/emit", ",.2f", higher_better=False)
REDIS_CPU = Metric("redis_cpu_us_per_emit", "redis CPU µs/emit", ",.1f", higher_better=False)
#: B7: the deliveries per CPU-second of all the server processes together.
DPS_NODE_CPU = Metric("deliveries_per_cpu_s", "deliveries/node CPU-s", ",.0f")
NODE_US = Metric("node_cpu_us_per_delivery", "node CPU µs/delivery", ",.2f", higher_better=False)
LOST = Metric("lost", "lost", ",.0f", higher_better=False)
REDIS_VS_PUBLISH = Metric("redis_cpu_vs_publish", "x bare PUBLISH", ",.2f", higher_better=False)
RSS = Metric("rss_per_conn", "bytes/conn", ",.0f", higher_better=False)
RSS_TOTAL = Metric("rss_delta_mb", "RSS delta MB", ",.1f", higher_better=False)
WIRE_IN = Metric("wire_in_per_rt", "B/msg in", ",.0f", higher_better=False)
WIRE_OUT = Metric("wire_out_per_rt", "B/msg out", ",.0f", higher_better=False)


@dataclass(frozen=True)
class Goal:
    """A hub figure held against a plain server's: ``hub ÷ peer >= target``."""

    case: str  # the peer's case, e.g. "B1-64"
    server: str  # the peer, e.g. "websockets"
    metric: Metric
    target: float
    what: str  # what the two figures are, for the report


@dataclass(frozen=True)
class Case:
    """One workload with its parameters."""

    id: str
    workload: str
    title: str
    mode: str  # "echo", "bcast", "idle" (loadgen) or "node-echo" (ws_client.mjs)
    args: tuple[str, ...]
    metrics: tuple[Metric, ...]
    #: Figures that go into the ratio table.
    ratios: tuple[Metric, ...]
    compression: bool = False
    #: Connections the loader opens (to raise the file limit and size timeouts).
    conns: int = 1
    note: str = ""
    timeout: float = 60.0
    extra: dict[str, str] = field(default_factory=dict)
    #: A hub case (the loader runs with ``-hub``; only hub servers run it).
    hub: bool = False
    goal: Goal | None = None
    #: B6: hub processes on one port sharing a Redis backplane (0: one plain server).
    processes: int = 0
    #: B6: the hubs run with recovery on (room messages in Redis streams).
    recovery: bool = False
    #: B8: runs on the FastAPI-under-uvicorn servers, and only on them.
    uvicorn: bool = False
    #: B7: runs on these servers only (and their ``--baseline`` copies), each as
    #: ``processes`` processes on ports of their own sharing one Redis
    #: (``bench/scaleout.py``).
    peers: tuple[str, ...] = ()
    #: B7: wskit's figure ÷ the peer's in the same case (the peer is ``server``).
    versus: Goal | None = None

    def runs_on(self, server: Server) -> bool:
        if self.peers:
            return server.name in self.peers or server.base_of in self.peers
        if server.named_only:
            return False
        return server.hub == self.hub and server.uvicorn == self.uvicorn


@dataclass(frozen=True)
class Timing:
    warmup: float
    duration: float


def bcast_argv(receivers: int, count: int, *, stalled: int) -> tuple[str, ...]:
    """The load generator's arguments for ``count`` broadcasts of 64 bytes to ``receivers``."""
    return (
        "-conns",
        str(receivers),
        "-count",
        str(count),
        "-size",
        "64",
        "-stalled",
        str(stalled),
        "-timeout",
        "90s",
    )


def make_cases(quick: bool) -> list[Case]:
    t = Timing(0.3, 1.0) if quick else Timing(1.0, 3.0)
    timed = ("-warmup", f"{t.warmup}s", "-duration", f"{t.duration}s")
    echo_timeout = t.warmup + t.duration + 40
    cases = [
        Case(
            "B1-1",
            "B1",
            "B1 echo, 32-byte text, 1 connection",
            "echo",
            ("-conns", "1", "-size", "32", *timed),
            (RT, P50, P99),
            (RT,),
            timeout=echo_timeout,
        ),
        Case(
            "B1-64",
            "B1",
            "B1 echo, 32-byte text, 64 connections (one message in flight on each)",
            "echo",
            ("-conns", "64", "-size", "32", *timed),
            (RT, P50, P99),
            (RT,),
            conns=64,
            timeout=echo_timeout,
        ),
        Case(
            "B1-hub-64",
            "B1",
            'B1 hub echo, event ["echo", 32-byte text] sent back by client.emit in a sync'
            " handler, 64 connections (compare B1-64)",
            "echo",
            ("-hub", "-conns", "64", "-size", "32", *timed),
            (RT, P50, P99),
            (),
            conns=64,
            timeout=echo_timeout,
            hub=True,
            goal=Goal(
                "B1-64",
                "websockets",
                RT,
                2.0,
                "hub echo event vs websockets' plain echo",
            ),
        ),
        Case(
            "B2-64K",
            "B2",
            "B2 echo, 64 KiB binary, 4 connections (MB/s of payload each way)",
            "echo",
            ("-conns", "4", "-size", str(64 * 1024), "-binary", *timed),
            (MBS, P50, P99),
            (MBS,),
            conns=4,
            timeout=echo_timeout,
        ),
        Case(
            "B2-1M",
            "B2",
            "B2 echo, 1 MiB binary, 4 connections (MB/s of payload each way)",
            "echo",
            ("-conns", "4", "-size", str(2**20), "-binary", *timed),
            (MBS, P50, P99),
            (MBS,),
            conns=4,
            timeout=echo_timeout,
        ),
    ]
    bcasts = [(1000, 100)] if quick else [(1000, 500), (10_000, 50)]
    for receivers, count in bcasts:
        k = f"{receivers // 1000}k"
        cases.append(
            Case(
                f"B3-{k}",
                "B3",
                f"B3 broadcast, 64-byte binary, 1 sender -> {receivers:,} receivers "
                f"+ 1 that never reads, {count} messages",
                "bcast",
                bcast_argv(receivers, count, stalled=1),
                (DPS, LAST, FIRST_ALL),
                (DPS, LAST),
                conns=receivers + 2,
                timeout=100.0,
            )
        )
    for receivers, count in bcasts:
        k = f"{receivers // 1000}k"
        cases.append(
            Case(
                f"B3-hub-{k}",
                "B3",
                f'B3 hub room emit, hub.to(room).emit("m", 64 chars), {receivers:,} members'
                f" + 1 that never reads, {count} emits (compare B3-{k})",
                "bcast",
                ("-hub", *bcast_argv(receivers, count, stalled=1)),
                (DPS, LAST, FIRST_ALL),
                (),
                conns=receivers + 2,
                timeout=100.0,
                hub=True,
                goal=Goal(
                    f"B3-{k}",
                    "picows",
                    DPS,
                    1.0,
                    "hub room emit vs picows' broadcast loop",
                ),
            )
        )
    b6_receivers, b6_count = (1000, 100) if quick else (1000, 300)
    for processes, recovery in ((1, False), (2, False), (4, False), (2, True)):
        cases.append(
            Case(
                f"B6-{processes}p" + ("-rec" if recovery else ""),
                "B6",
                f'B6 room emit through Redis, hub.to(room).emit("m", 64 chars), '
                f"{processes} hub process(es) on one port (SO_REUSEPORT, all on core 0 with "
                f"redis-server), {b6_receivers:,} members spread among them, {b6_count} emits, "
                f"recovery {'on' if recovery else 'off'}",
                "bcast",
                ("-hub", *bcast_argv(b6_receivers, b6_count, stalled=0)),
                (DPS, LAST, FIRST_ALL, REDIS_CMDS, REDIS_CPU, REDIS_VS_PUBLISH),
                (),
                conns=b6_receivers + 2,
                timeout=100.0,
                hub=True,
                processes=processes,
                recovery=recovery,
            )
        )
    cases += scaleout_cases(quick)
    idle = 10_000
    cases.append(
        Case(
            "B4-10k",
            "B4",
            f"B4 {idle:,} idle connections: server RSS growth per connection "
            "(VmRSS after 100, then after all)",
            "idle",
            ("-conns", str(idle), "-warm", "100", "-stdin", "-timeout", "90s"),
            (RSS, RSS_TOTAL),
            (RSS,),
            conns=idle,
            timeout=100.0,
        )
    )
    docs = ("-docs", str(DOCS))
    cases.append(
        Case(
            "B5-go",
            "B5",
            "B5 echo + permessage-deflate, 4 KiB JSON, 64 connections, Go client "
            "(gorilla: no context takeover)",
            "echo",
            ("-conns", "64", "-compress", *docs, *timed),
            (RT, P50, WIRE_IN, WIRE_OUT),
            (RT, WIRE_IN),
            compression=True,
            conns=64,
            timeout=echo_timeout,
        )
    )
    cases.append(
        Case(
            "B5-node",
            "B5",
            "B5 echo + permessage-deflate, 4 KiB JSON, 64 connections, Node ws client "
            "(context takeover both ways when the server accepts it)",
            "node-echo",
            (
                "--conns",
                "64",
                "--docs",
                str(DOCS),
                "--warmup",
                str(t.warmup),
                "--duration",
                str(t.duration),
                "--timeout",
                str(int(echo_timeout) - 5),
            ),
            (RT, P50, WIRE_IN, WIRE_OUT),
            (RT, WIRE_IN),
            compression=True,
            conns=64,
            timeout=echo_timeout,
        )
    )
    cases.append(
        Case(
            "B8-64",
            "B8",
            "B8 echo through FastAPI under uvicorn, 32-byte text, 64 connections (one message"
            " in flight on each), per --ws choice; compare B1-64",
            "echo",
            ("-conns", "64", "-size", "32", *timed),
            (RT, P50, P99),
            (RT,),
            conns=64,
            timeout=echo_timeout,
            uvicorn=True,
        )
    )
    return cases


#: B7's servers: wskit's hub and its peer python-socketio.
SCALEOUT_PEERS = ("wskit-hub", "socketio")


def scaleout_cases(quick: bool) -> list[Case]:
    """B7: rooms through one Redis, the hub against python-socketio's ``AsyncRedisManager``.

    Two server processes on ports of their own; receiver ``k`` connects to
    process ``k % 2`` and joins room ``r<k // (members per room)>``, so the
    two members of a room of 2 are on different processes, and the room of
    2 000 has 1 000 members on each. The sender, on the first process, asks
    for ``count`` emits of ``["m", 64 chars]`` to the rooms in turn.
    """
    out = []
    for rooms, members, count, target in (
        (1000, 2, 10_000 if quick else 20_000, 4.0),
        (1, 2000, 100 if quick else 200, 6.0),
    ):
        conns = rooms * members
        case_id = f"B7-{rooms}x{members}"
        out.append(
            Case(
                case_id,
                "B7",
                f"B7 room emits through one Redis, {rooms:,} room(s) x {members:,} members over 2"
                f" server processes (ports of their own, core 0; redis-server and the loader on"
                f" core 1), {count:,} emits of 64 chars to the rooms in turn, recovery off;"
                " wskit hub vs python-socketio AsyncRedisManager",
                "bcast",
                (
                    *("-conns", str(conns), "-rooms", str(rooms), "-count", str(count)),
                    *("-size", "64", "-stalled", "0", "-timeout", "90s"),
                ),
                (DPS, DPS_NODE_CPU, NODE_US, LOST, REDIS_CMDS, REDIS_CPU, REDIS_VS_PUBLISH),
                (),
                conns=conns + 2,
                timeout=100.0,
                processes=2,
                peers=SCALEOUT_PEERS,
                versus=Goal(
                    case_id,
                    "socketio",
                    DPS_NODE_CPU,
                    target,
                    "deliveries per node CPU-second, wskit hub vs python-socketio",
                ),
            )
        )
    return out
