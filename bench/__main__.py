"""Run the wskit benchmark suite: ``python -m bench [--quick] [--only B1,B3] ...``.

For every workload and server: start the server pinned to core 0, the load
generator pinned to core 1, read the server's and the loader's CPU time over
the measured window from /proc, and print a table of figures per workload
and a table of ratios wskit ÷ each peer (the hub cases: wskit-hub ÷ the
peer figure each is held against, with its goal). Raw results go to
bench/results/<date>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import baseline
from .cases import (
    BENCH,
    BUILD,
    DOCS,
    GORILLA_SERVER,
    LOADGEN,
    NODE_CLIENT,
    PYTHON_LOOPS,
    ROOT,
    SERVERS,
    Case,
    Server,
    make_cases,
)
from .cluster import redis_probe, start_cluster
from .payloads import write_documents
from .procs import Proc, cpu_percent, free_port, rss_kb, sample, wait_quiet
from .report import (
    NOISY,
    Record,
    baseline_tables,
    figures_tables,
    goal_tables,
    is_rate,
    per_cpu,
    per_cpu_metric,
    ratio_tables,
    scaleout_tables,
    uvicorn_tables,
)
from .scaleout import run_scaleout

LOGS = BUILD / "logs"
RESULTS = BENCH / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- setup


def ensure_built() -> None:
    """Build the Go programs (bench/bootstrap.sh) when missing or older than their source."""
    sources = {
        LOADGEN: BENCH / "loadgen" / "main.go",
        GORILLA_SERVER: BENCH / "servers" / "gorilla_server.go",
    }
    stale = [
        b for b, s in sources.items() if not b.exists() or b.stat().st_mtime < s.stat().st_mtime
    ]
    if stale:
        log(f"bench: building {', '.join(p.name for p in stale)} (bench/bootstrap.sh)")
        subprocess.run(["bash", str(BENCH / "bootstrap.sh")], cwd=ROOT, check=True, timeout=900)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    dists = ("wskit", "websockets", "aiohttp", "picows", "uvloop", "uvicorn", "fastapi")
    for dist in (*dists, "python-socketio", "python-engineio", "redis", "hiredis"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    with contextlib.suppress(OSError, ValueError, KeyError):
        pkg = json.loads((ROOT / "node_modules" / "ws" / "package.json").read_text())
        out["node ws"] = pkg["version"]
    for name, argv in (("node", ["node", "--version"]), ("go", ["go", "version"])):
        if shutil.which(argv[0]):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                text = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
                out[name] = text.strip().removeprefix("go version ").split(" ")[0]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "golang-github-gorilla-websocket-dev"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if status.returncode == 0:
            out["gorilla/websocket"] = status.stdout.strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out["wskit commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return out


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "PYTHONMALLOC"):
        env.pop(var, None)
    return env


# ---------------------------------------------------------------- one run


def client_argv(case: Case, port: int) -> list[str]:
    url = f"ws://127.0.0.1:{port}/"
    if case.mode == "node-echo":
        return ["node", str(NODE_CLIENT), "--url", url, *case.args]
    mode = {"echo": "echo", "bcast": "bcast", "idle": "idle"}[case.mode]
    return [str(LOADGEN), "-mode", mode, "-url", url, *case.args]


def figures_of(case: Case, client: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    figs = {k: v for k, v in client.items() if isinstance(v, int | float)}
    figs.update(extra)
    return figs


def run_one(case: Case, server: Server, loop: str | None, python: str) -> Record:
    label = server.label(loop)
    rec: Record = {
        "case": case.id,
        "workload": case.workload,
        "server": server.name,
        "loop": loop,
        "label": label,
    }
    started = time.monotonic()
    port = free_port()
    env = baseline.environment(server, child_env())
    stem = f"{case.id}-{label.replace('/', '-')}"
    if case.peers:
        # B7: a cluster of each peer on Redis (bench/scaleout.py).
        rec.update(
            run_scaleout(
                case, server, loop, python, cwd=ROOT, logs=LOGS, stem=stem, env=env, loadgen=LOADGEN
            )
        )
        rec["wall_s"] = round(time.monotonic() - started, 2)
        return rec
    # B6: several servers on one port and a redis-server (bench/cluster.py).
    others: list[Proc] = []
    redis_port = 0
    if case.processes:
        try:
            servers, redis, redis_port = start_cluster(
                case, server, python, port, loop, ROOT, LOGS, stem, env
            )
        except RuntimeError as exc:
            rec["error"] = str(exc)
            return rec
        srv, others = servers[0], [*servers[1:], redis]
    else:
        srv = Proc(
            server.argv(python, port, case.compression, loop),
            core=0,
            cwd=ROOT,
            log=LOGS / f"{stem}.server.log",
            env=env,
        )
    cli: Proc | None = None
    try:
        try:
            for proc in [srv, *others[:-1]]:
                proc.wait_for("READY", time.monotonic() + 20)
        except (TimeoutError, RuntimeError) as exc:
            why = str(exc) or "no READY line within 20 s"
            rec["error"] = f"server did not start: {why} {srv.log_tail()}"
            return rec
        cli = Proc(
            client_argv(case, port),
            core=1,
            cwd=ROOT,
            log=LOGS / f"{stem}.client.log",
            stdin=case.mode == "idle",
            env=env,
        )
        deadline = time.monotonic() + case.timeout
        first = last = None
        extra: dict[str, Any] = {}
        rss0: int | None = None
        client: dict[str, Any] | None = None
        while True:
            try:
                line = cli.next_line(deadline)
            except TimeoutError:
                rec["error"] = f"no result within {case.timeout:.0f} s"
                break
            if line is None:
                rec["error"] = f"client exited without a result: {cli.log_tail()}"
                break
            if line == "MEASURE start":
                first = sample(srv.pid, cli.pid)
            elif line == "MEASURE end":
                last = sample(srv.pid, cli.pid)
            elif line.startswith("PHASE warm"):
                rss0 = rss_kb(srv.pid)
                cli.write("go\n")
            elif line.startswith("READY"):
                # Let the server settle (handler tasks started, buffers filled).
                time.sleep(1.0)
                rss1 = rss_kb(srv.pid)
                _, warm, registered = line.split()
                conns = int(registered) - int(warm)
                if rss0 is not None and rss1 is not None and conns > 0:
                    extra["rss_per_conn"] = (rss1 - rss0) * 1024 / conns
                    extra["rss_delta_mb"] = (rss1 - rss0) / 1024
                    extra["rss_before_mb"] = rss0 / 1024
                    extra["rss_after_mb"] = rss1 / 1024
                cli.write("stop\n")
            elif line.startswith("RESULT "):
                client = json.loads(line[len("RESULT ") :])
                break
        if redis_port and client is not None and srv.alive():
            # B6: what an emit costs Redis (the load generator gone, its members with it).
            cli.stop(grace=5)
            try:
                extra.update(redis_probe(redis_port, port, case.processes))
            except (OSError, TimeoutError, RuntimeError, ValueError) as exc:
                rec["redis_probe_error"] = str(exc)
        if client is not None:
            rec["client"] = client
            rec["figures"] = figures_of(case, client, extra)
            if client.get("error"):
                rec["error"] = str(client["error"])
        if first is not None and last is not None:
            server_cpu, client_cpu, other_cpu = cpu_percent(first, last)
            rec["cpu"] = {"server": server_cpu, "client": client_cpu, "other": other_cpu}
        if not srv.alive():
            died = f"server exited with status {srv.popen.returncode}: {srv.log_tail()}"
            rec["error"] = f"{rec['error']}; {died}" if rec.get("error") else died
        elif "invalid compression negotiation" in rec.get("error", ""):
            # gorilla's client insists that the server echo client_no_context_takeover.
            rec["skipped"] = (
                "gorilla's client refuses this server's permessage-deflate answer"
                " (it requires both no_context_takeover parameters echoed); see B5-node"
            )
            rec["detail"] = rec.pop("error")
        return rec
    finally:
        if cli is not None:
            cli.stop(grace=5)
        srv.stop()
        for proc in others:
            proc.stop()
        rec["wall_s"] = round(time.monotonic() - started, 2)


def summary_line(case: Case, rec: Record) -> str:
    if rec.get("skipped"):
        return f"skipped: {rec['skipped']}"
    if rec.get("error"):
        return f"ERROR {rec['error'][:200]}"
    metric = case.metrics[0]
    value = (rec.get("figures") or {}).get(metric.key)
    cpu = rec.get("cpu") or {}
    text = f"{format(value, metric.fmt) if value is not None else '-'} {metric.label}"
    if is_rate(metric) and (fast := per_cpu(rec, metric)) is not None:
        text += f", {format(fast, metric.fmt)} {per_cpu_metric(metric).label}"
    if cpu:
        text += (
            f" (server {cpu['server']:.0f}%, loader {cpu['client']:.0f}%,"
            f" other {cpu['other']:.0f}%)"
        )
    return text


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [s.name for s in SERVERS]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark wskit against its peers (see bench/README.md).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs, fewer cases (under 3 minutes)"
    )
    parser.add_argument(
        "--only", default="", help="workloads or case ids, comma-separated: B1,B3 or B1-64"
    )
    parser.add_argument(
        "--servers", default="", help=f"servers, comma-separated (default all): {','.join(names)}"
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop", "both"),
        default=None,
        help="event loop of the Python servers (default: both when uvloop is installed;"
        " asyncio with --quick)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each figure N times, keep the best"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="before each run wait up to this many seconds for other load to calm down"
        " (default 10, quick 2; at most 3 minutes in all, quick 20 s)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REF",
        help="also run the wskit servers of this commit (a branch, tag, HEAD~1...; several,"
        " comma-separated), in the same run, and print their figures and ratios beside today's",
    )
    parser.add_argument("--output", type=Path, default=None, help="where to write the raw JSON")
    parser.add_argument(
        "--report", type=Path, default=None, help="print the tables of a saved JSON file and exit"
    )
    ns = parser.parse_args(argv)
    unknown = {s for s in ns.servers.split(",") if s} - set(names)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}; choose from {names}")
    ns.repeat = max(1, min(ns.repeat, 5))
    return ns


def select_cases(quick: bool, only: str) -> list[Case]:
    cases = make_cases(quick)
    wanted = [w.strip().upper() for w in only.split(",") if w.strip()]
    if not wanted:
        return cases
    return [c for c in cases if c.workload in wanted or c.id.upper() in wanted]


def choose_loops(option: str | None, quick: bool) -> list[str]:
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    if option is None and quick:
        return ["asyncio"]  # the quick run stays under 3 minutes
    if option == "both" or option is None:
        return list(PYTHON_LOOPS) if has_uvloop else ["asyncio"]
    if option == "uvloop" and not has_uvloop:
        raise SystemExit("uvloop is not installed (pip install -e '.[bench]')")
    return [option]


def better(case: Case, a: Record, b: Record) -> Record:
    """The better of two attempts at the same figure."""
    if a.get("error"):
        return b
    if b.get("error"):
        return a
    metric = case.metrics[0]
    va = (a.get("figures") or {}).get(metric.key, 0)
    vb = (b.get("figures") or {}).get(metric.key, 0)
    if metric.higher_better:
        return a if va >= vb else b
    return a if va <= vb else b


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.report is not None:
        return reprint(ns.report)
    ensure_built()
    cases = select_cases(ns.quick, ns.only)
    if not cases:
        raise SystemExit(f"--only {ns.only!r} matches no workload")
    chosen = [s for s in ns.servers.split(",") if s]
    servers = [s for s in SERVERS if not chosen or s.name in chosen]
    base_commits: list[str] = []
    copies: dict[str, list[Server]] = {}
    for ref in filter(None, (ns.baseline or "").split(",")):
        commit, src = baseline.prepare(ref)
        base_commits.append(commit)
        for copy in baseline.variants(servers, commit, src):
            copies.setdefault(copy.base_of or "", []).append(copy)
    # Each copy runs right after its original: both meet the same machine.
    servers = [run for server in servers for run in (server, *copies.get(server.name, ()))]
    loops = choose_loops(ns.loop, ns.quick)
    fd_limit = raise_fd_limit()
    write_documents(DOCS)
    python = sys.executable

    plan: list[tuple[Case, Server, str | None]] = []
    for case in cases:
        for server in servers:
            if not case.runs_on(server):
                continue
            for loop in loops if server.kind == "python" else [None]:
                plan.append((case, server, loop))

    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    output = ns.output or RESULTS / f"{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": stamp,
        "quick": ns.quick,
        "loops": loops,
        "repeat": ns.repeat,
        "cpus": os.cpu_count(),
        "fd_limit": fd_limit,
        "platform": platform.platform(),
        "versions": versions(),
        "baseline": ",".join(base_commits) or None,
    }
    settle = ns.settle if ns.settle is not None else (2.0 if ns.quick else 10.0)
    settle_budget = 20.0 if ns.quick else 180.0
    if settle <= 0:
        settle_budget = 0.0
    records: list[Record] = []
    started = time.monotonic()
    log(
        f"bench: {len(plan)} runs ({len(cases)} cases on {len(servers)} servers,"
        f" loops: {', '.join(loops)}); server on core 0, loader on core 1"
    )
    # --repeat runs the whole plan again, round after round, rather than each
    # figure N times in a row: the machine's slow spells (seen here: every
    # server 20% down for minutes) then fall on every server alike, instead
    # of on all the attempts of whichever one ran during them.
    slots: list[Record | None] = [None] * len(plan)
    for round_number in range(1, ns.repeat + 1):
        for i, (case, server, loop) in enumerate(plan):
            label = server.label(loop)
            why = server.available()
            if why is None and case.compression and not server.compression:
                why = server.note or "no permessage-deflate"
            if why is None and case.conns + 64 > fd_limit:
                why = f"needs {case.conns} file descriptors, limit is {fd_limit}"
            if why is not None:
                if slots[i] is None:
                    slots[i] = {
                        "case": case.id,
                        "workload": case.workload,
                        "server": server.name,
                        "loop": loop,
                        "label": label,
                        "skipped": why,
                    }
                continue
            if settle_budget > 0:
                load, waited = wait_quiet(min(settle, settle_budget))
                settle_budget -= waited
                if waited >= 1:
                    log(f"  waited {waited:.0f} s for the machine to calm down ({load:.0f}% busy)")
            rec = run_one(case, server, loop, python)
            earlier = slots[i]
            slots[i] = rec if earlier is None else better(case, earlier, rec)
            where = f"round {round_number}/{ns.repeat} " if ns.repeat > 1 else ""
            log(f"[{where}{i + 1}/{len(plan)}] {case.id} {label}: {summary_line(case, rec)}")
            records = [r for r in slots if r is not None]
            meta["elapsed_s"] = round(time.monotonic() - started, 1)
            output.write_text(json.dumps({"meta": meta, "results": records}, indent=1) + "\n")
    records = [r for r in slots if r is not None]

    print_report(meta, records, cases, loops)
    print(f"raw results: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    print(f"total time: {time.monotonic() - started:.0f} s")
    failed = [r for r in records if r.get("error")]
    return 1 if failed and len(failed) == len(records) else 0


def print_report(
    meta: dict[str, Any], records: Sequence[Record], cases: Sequence[Case], loops: Sequence[str]
) -> None:
    stamp = meta["date"]
    print()
    print(f"wskit benchmarks ({'quick' if meta['quick'] else 'full'} run, {stamp})")
    print(", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    print(
        "CPU columns: % of one core over the measured window, server (core 0), load"
        " generator (core 1), everything else on the machine. ~100% server CPU: the"
        " server is the bottleneck; ~100% load CPU: the figure is capped by the loader."
    )
    print(f"'*' after a name: other processes used more than {NOISY:.0f}% of a core.")
    print(
        "'/CPU-s' columns: the rate per second of server CPU time (the rate ÷ the server's"
        " share of its core), comparable when the machine's load or the loader's limit differ."
    )
    print()
    print(figures_tables(cases, records))
    ratios = ratio_tables(cases, records, loops)
    if ratios:
        print(ratios)
    goals = goal_tables(cases, records, loops)
    if goals:
        print(goals)
    scaleout = scaleout_tables(cases, records, loops)
    if scaleout:
        print(scaleout)
    under_uvicorn = uvicorn_tables(cases, records, loops)
    if under_uvicorn:
        print(under_uvicorn)
    against_base = baseline_tables(cases, records, loops)
    if against_base:
        print(against_base)


def reprint(path: Path) -> int:
    """Print the tables of a saved run again."""
    data = json.loads(path.read_text())
    meta, records = data["meta"], data["results"]
    seen = {r["case"] for r in records}
    cases = [c for c in make_cases(meta["quick"]) if c.id in seen]
    print_report(meta, records, cases, meta["loops"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
