"""What the benchmark runs: the servers under test and the workloads (B1-B5)."""

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
        return argv

    def available(self) -> str | None:
        """``None`` when the server can run here, else why not."""
        if self.kind == "python":
            top = self.target.rsplit(".", 1)[-1].removesuffix("_server")
            needs = {"picows_ws": "picows.websockets"}.get(top, top)
            try:
                found = importlib.util.find_spec(needs) is not None
            except ModuleNotFoundError:
                found = False
            return None if found else f"python package {needs} is not installed"
        if self.kind == "node":
            if shutil.which("node") is None:
                return "node is not installed"
            if not (ROOT / "node_modules" / "ws").is_dir():
                return "node_modules/ws is missing (npm ci)"
            return None
        return None if Path(self.target).exists() else f"{self.target} is not built"


SERVERS: tuple[Server, ...] = (
    Server("wskit", "python", "bench.servers.wskit_server", True),
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
)


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
RSS = Metric("rss_per_conn", "bytes/conn", ",.0f", higher_better=False)
RSS_TOTAL = Metric("rss_delta_mb", "RSS delta MB", ",.1f", higher_better=False)
WIRE_IN = Metric("wire_in_per_rt", "B/msg in", ",.0f", higher_better=False)
WIRE_OUT = Metric("wire_out_per_rt", "B/msg out", ",.0f", higher_better=False)


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


@dataclass(frozen=True)
class Timing:
    warmup: float
    duration: float


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
                (
                    "-conns",
                    str(receivers),
                    "-count",
                    str(count),
                    "-size",
                    "64",
                    "-stalled",
                    "1",
                    "-timeout",
                    "90s",
                ),
                (DPS, LAST, FIRST_ALL),
                (DPS, LAST),
                conns=receivers + 2,
                timeout=100.0,
            )
        )
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
    return cases
