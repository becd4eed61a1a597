"""The printed tables: figures per workload, wskit ÷ each peer, the hub's goals, B7, B8."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cases import UVICORN_WSKIT, Case, Metric

#: A run whose machine had more than this much other CPU load (% of a core) is flagged.
NOISY = 25.0
#: A load generator above this share of its core (%) capped the rate it measured: the
#: ratio tables then divide the figures per server CPU-second instead.
LOADER_BOUND = 90.0

Record = dict[str, Any]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    if headers and not headers[-1] and all(not r[-1] for r in rows):
        headers = headers[:-1]
        rows = [r[:-1] for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return indent + "  ".join(out).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _fmt(value: object, fmt: str) -> str:
    if isinstance(value, int | float):
        return format(value, fmt)
    return "-"


def _pct(value: object) -> str:
    return f"{value:.0f}%" if isinstance(value, int | float) else "-"


def is_rate(metric: Metric) -> bool:
    """Whether ``metric`` is a rate (per second), which has a per-CPU-second figure."""
    return metric.higher_better and metric.key.endswith("_per_s")


def per_cpu_metric(metric: Metric) -> Metric:
    """The per-server-CPU-second figure of a rate (``rt_per_s`` -> ``rt_per_cpu_s``)."""
    return Metric(
        metric.key.removesuffix("_per_s") + "_per_cpu_s",
        metric.label.removesuffix("/s") + "/CPU-s",
        metric.fmt,
    )


def shown_metrics(case: Case) -> list[Metric]:
    """The case's metrics, each rate followed by its per-CPU-second figure."""
    keys = {m.key for m in case.metrics}
    shown: list[Metric] = []
    for metric in case.metrics:
        shown.append(metric)
        if is_rate(metric) and per_cpu_metric(metric).key not in keys:
            shown.append(per_cpu_metric(metric))
    return shown


def figures_with_per_cpu(case: Case, rec: Record) -> dict[str, Any]:
    """The record's figures plus each rate's per-CPU-second figure (from its CPU reading)."""
    figs = dict(rec.get("figures") or {})
    for metric in case.metrics:
        if is_rate(metric):
            figs.setdefault(per_cpu_metric(metric).key, per_cpu(rec, metric))
    return figs


def figures_tables(cases: Sequence[Case], records: Sequence[Record]) -> str:
    out: list[str] = []
    for case in cases:
        shown = shown_metrics(case)
        rows: list[list[str]] = []
        notes: list[str] = []
        for rec in records:
            if rec["case"] != case.id:
                continue
            if rec.get("skipped"):
                rows.append([rec["label"], *(["n/a"] * len(shown)), "", "", "", ""])
                notes.append(f"{rec['label']}: {rec['skipped']}")
                continue
            cpu = rec.get("cpu") or {}
            figs = figures_with_per_cpu(case, rec)
            flag = "*" if (cpu.get("other") or 0) > NOISY else ""
            extra = ""
            if case.workload == "B5":
                negotiated = (rec.get("client") or {}).get("negotiated") or "none"
                extra = "ctx takeover" if "no_context_takeover" not in negotiated else "no ctx"
                if negotiated == "none":
                    extra = "NOT COMPRESSED"
            if case.workload == "B3":
                extra = (rec.get("client") or {}).get("server_ack", "")
            if case.peers:
                extra = _pct(cpu.get("redis"))
            cells = [rec["label"] + flag]
            cells += [_fmt(figs.get(m.key), m.fmt) for m in shown]
            cells += [_pct(cpu.get("server")), _pct(cpu.get("client")), _pct(cpu.get("other"))]
            cells.append(extra)
            if rec.get("error"):
                cells = [rec["label"], "error", *([""] * (len(shown) + 3))]
                notes.append(f"{rec['label']}: {rec['error'][:300]}")
            rows.append(cells)
        if not rows:
            continue
        headroom = loader_headroom(case, records)
        if headroom:
            notes.append(f"loader: {headroom}")
        headers = ["server", *(m.label for m in shown), "srv CPU", "load CPU", "other", ""]
        if case.workload == "B3":
            headers[-1] = "server ack"
        if case.workload == "B5":
            headers[-1] = "negotiated"
        if case.peers:
            headers[-1] = "redis CPU"
        if not any(r.get("cpu") for r in records if r["case"] == case.id):
            # No measured window (B4 reads memory, not CPU): drop the CPU columns.
            m = len(shown)
            headers = headers[: 1 + m] + headers[4 + m :]
            rows = [r[: 1 + m] + r[4 + m :] for r in rows]
        out.append(f"{case.id}: {case.title}")
        out.append(table(headers, rows))
        # One note per distinct message, naming every server it applies to.
        grouped: dict[str, list[str]] = {}
        for note in notes:
            who, _, text = note.partition(": ")
            grouped.setdefault(text, []).append(who)
        out.extend(f"    note: {', '.join(who)}: {text}" for text, who in grouped.items())
        out.append("")
    return "\n".join(out)


def loader_headroom(case: Case, records: Sequence[Record]) -> str:
    """How far the load generator was from its own limit at the best figure of a case."""
    metric = case.metrics[0]
    if not metric.higher_better:
        return ""
    best: Record | None = None
    value = 0.0
    for rec in records:
        figure = _primary_value(rec, metric) if rec["case"] == case.id else None
        if figure is not None and figure > value:
            best, value = rec, figure
    if best is None:
        return ""
    cpu = (best.get("cpu") or {}).get("client")
    if not isinstance(cpu, int | float) or cpu <= 0:
        return ""
    capacity = value / (cpu / 100)
    return (
        f"at the best figure ({best['label']}, {format(value, metric.fmt)} {metric.label})"
        f" the load generator used {cpu:.0f}% of its core: it could drive about"
        f" {format(capacity, metric.fmt)}"
    )


def _primary_value(rec: Record, metric: Metric) -> float | None:
    if rec.get("error") or rec.get("skipped"):
        return None
    value = (rec.get("figures") or {}).get(metric.key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


#: wskit's plain servers, each with its own table of ratios to the peers.
WSKIT_PATHS = ("wskit", "wskit-cb")
#: The hub's server, held against the plain peers by the goal tables.
HUB = "wskit-hub"
#: The peers the baseline comparison divides by, per server CPU-second.
BASELINE_PEERS = ("picows", "websockets")


def ratio_tables(cases: Sequence[Case], records: Sequence[Record], loops: Sequence[str]) -> str:
    """wskit's figure divided by each peer's, wskit and the Python peers on the same loop.

    One table per public path of wskit that ran (the Conn API, ``wskit``;
    the callback path, ``wskit-cb``); the hub's cases have ``goal_tables``.
    """
    # The hub's cases have their goals, B7 and B8 tables of their own.
    apart = {c.id for c in cases if c.hub or c.uvicorn or c.peers}
    plain = [r for r in records if r["case"] not in apart]
    peers: list[str] = []
    for rec in plain:
        if not rec["server"].startswith("wskit") and rec["server"] not in peers:
            peers.append(rec["server"])
    if not peers:
        return ""
    out: list[str] = []
    for ours in WSKIT_PATHS:
        for loop in loops:
            out += _ratio_table(ours, loop, cases, plain, peers)
    return "\n".join(out)


def _ratio_table(
    ours: str, loop: str, cases: Sequence[Case], records: Sequence[Record], peers: list[str]
) -> list[str]:
    rows: list[list[str]] = []
    for case in cases:
        key = (case.id, ours, loop)
        mine = [r for r in records if (r["case"], r["server"], r.get("loop")) == key]
        if not mine:
            continue
        for metric in case.ratios:
            arrow = "higher" if metric.higher_better else "lower"
            cells = [f"{case.id} {metric.label} ({arrow} is better)"]
            for peer in peers:
                theirs_recs = [
                    r
                    for r in records
                    if r["case"] == case.id
                    and r["server"] == peer
                    and (r.get("loop") in (loop, None))
                ]
                cells.append(_ratio_cell(mine[0], theirs_recs[0] if theirs_recs else None, metric))
            rows.append(cells)
    if not rows:
        return []
    if all(cell == "-" for row in rows for cell in row[1:]):
        return [f"{ours}/{loop} ÷ peer: no ratio, {ours}/{loop} has no figure (see the notes)", ""]
    title = f"{ours}/{loop} ÷ peer (Python peers on {loop}; node-ws and gorilla as they are)"
    out = [title, table(["figure", *peers], rows)]
    if any(cell.endswith(" c") for row in rows for cell in row[1:]):
        out.append(
            f"    c: per server CPU-second (the load generator was above {LOADER_BOUND:.0f}%"
            " of its core in one of the two runs, so their rates measured the loader)"
        )
    return [*out, ""]


def loader_bound(rec: Record | None) -> bool:
    """Whether the load generator used more than LOADER_BOUND of its core over the window."""
    client = ((rec or {}).get("cpu") or {}).get("client")
    return isinstance(client, int | float) and client > LOADER_BOUND


def _ratio_cell(mine: Record, theirs: Record | None, metric: Metric) -> str:
    """``mine ÷ theirs``: per server CPU-second (marked `` c``) for a rate the loader capped."""
    if is_rate(metric) and (loader_bound(mine) or loader_bound(theirs)):
        a, b = per_cpu(mine, metric), per_cpu(theirs, metric)
        return "-" if a is None or b is None else f"{a / b:.2f}x c"
    a = _primary_value(mine, metric)
    b = _primary_value(theirs, metric) if theirs is not None else None
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def goal_tables(cases: Sequence[Case], records: Sequence[Record], loops: Sequence[str]) -> str:
    """Each hub case's figure ÷ the plain server's it is held against, and its goal."""
    rows: list[list[str]] = []
    whats: list[str] = []
    for case in cases:
        goal = case.goal
        if goal is None:
            continue
        metric = goal.metric
        whats.append(
            f"{case.id} ÷ {goal.case} {goal.server}: {goal.what}"
            f" ({metric.label}, goal >= {goal.target:.1f}x)"
        )
        for loop in loops:
            hub = _find(records, case.id, HUB, loop)
            if hub is None:
                continue
            peer = _find(records, goal.case, goal.server, loop)
            ours = _primary_value(hub, metric)
            theirs = _primary_value(peer, metric) if peer is not None else None
            cells = [
                f"{case.id} ÷ {goal.case} {goal.server}",
                loop,
                _fmt(ours, metric.fmt) + _noisy(hub),
                _fmt(theirs, metric.fmt) + (_noisy(peer) if peer is not None else ""),
            ]
            if ours is None or theirs is None:
                missing = hub if ours is None else peer
                why = "not run" if missing is None else "no figure"
                if missing is not None and missing.get("skipped"):
                    why = "skipped"
                elif missing is not None and missing.get("error"):
                    why = "error"
                who = case.id if ours is None else f"{goal.case} {goal.server}/{loop}"
                cells += ["-", f">= {goal.target:.1f}x", f"{who}: {why}"]
            else:
                ratio = ours / theirs
                met = ratio >= goal.target
                cells += [f"{ratio:.2f}x", f">= {goal.target:.1f}x", "met" if met else "MISSED"]
            rows.append(cells)
    if not rows:
        return ""
    out = ["Hub goals: wskit-hub's figure ÷ the plain peer's (same event loop)"]
    headers = ["hub case ÷ peer case", "loop", "wskit-hub", "peer", "ratio", "goal", ""]
    out.append(table(headers, rows))
    out.extend(f"    {what}" for what in whats)
    out.append("")
    return "\n".join(out)


def _find(records: Sequence[Record], case: str, server: str | None, loop: str) -> Record | None:
    """The record of ``case`` on ``server`` (any server when ``None``) and ``loop``."""
    for rec in records:
        if (
            rec["case"] == case
            and (server is None or rec["server"] == server)
            and rec.get("loop") in (loop, None)
        ):
            return rec
    return None


def _noisy(rec: Record) -> str:
    return "*" if ((rec.get("cpu") or {}).get("other") or 0) > NOISY else ""


def per_cpu(rec: Record | None, metric: Metric) -> float | None:
    """The figure per server CPU-second: the rate divided by the server's share of its core.

    Comparable across runs that met different loads on the machine, where the
    raw rate is not; ``None`` without a figure or a CPU reading.
    """
    if rec is None:
        return None
    value = _primary_value(rec, metric)
    server_cpu = (rec.get("cpu") or {}).get("server")
    if value is None or not isinstance(server_cpu, int | float) or server_cpu <= 0:
        return None
    return value / (server_cpu / 100)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def baseline_tables(cases: Sequence[Case], records: Sequence[Record], loops: Sequence[str]) -> str:
    """Today's wskit beside the ``--baseline`` commit's, from the same run.

    Per case and wskit server: both figures and their ratio, then each one's
    ratio to every peer of BASELINE_PEERS per server CPU-second (a hub case
    is held against the plain case of its goal). The two ratios to a peer
    should agree within the run's noise when nothing was meant to change.
    """
    # In the order they ran: wskit, wskit-cb, then the hub.
    copies = list(dict.fromkeys(r["server"] for r in records if "@" in r["server"]))
    if not copies:
        return ""
    rows: list[list[str]] = []
    for copy in copies:
        for case in cases:
            metric = case.metrics[0]
            if not metric.higher_better:
                continue
            peer_case = case.goal.case if case.goal is not None else case.id
            ours = copy.partition("@")[0]
            for loop in loops:
                now = _find(records, case.id, ours, loop)
                base = _find(records, case.id, copy, loop)
                if now is None or base is None:
                    continue
                cells = [
                    case.id,
                    f"{copy}/{loop}",
                    _fmt(_primary_value(now, metric), metric.fmt) + _noisy(now),
                    _fmt(_primary_value(base, metric), metric.fmt) + _noisy(base),
                    _ratio(_primary_value(now, metric), _primary_value(base, metric)),
                    _ratio(per_cpu(now, metric), per_cpu(base, metric)),
                ]
                for peer in BASELINE_PEERS:
                    theirs = per_cpu(_find(records, peer_case, peer, loop), metric)
                    cells += [
                        _ratio(per_cpu(now, metric), theirs),
                        _ratio(per_cpu(base, metric), theirs),
                    ]
                rows.append(cells)
    if not rows:
        return ""
    commits = ", ".join(dict.fromkeys(copy.partition("@")[2] for copy in copies))
    headers = ["case", "baseline", "now", "base", "now ÷ base", "per CPU"]
    for peer in BASELINE_PEERS:
        headers += [f"now ÷ {peer}", f"base ÷ {peer}"]
    out = [
        f"The working tree against the baseline {commits}, same run"
        " (first figure of each case; higher is better)",
        table(headers, rows),
        "    '÷ peer' columns: figure per server CPU-second ÷ the peer's (hub cases: ÷ the"
        " plain case of their goal)",
        "",
    ]
    return "\n".join(out)


def uvicorn_tables(cases: Sequence[Case], records: Sequence[Record], loops: Sequence[str]) -> str:
    """B8: uvicorn with wskit's WebSocket layer ÷ uvicorn with each of its own.

    Per ``--ws`` choice and event loop, the ratio of each rate and of its
    figure per server CPU-second (the fairer one when the machine's other
    load or the load generator's limit differed between runs).
    """
    out: list[str] = []
    for case in cases:
        if not case.uvicorn:
            continue
        for loop in loops:
            mine = _find(records, case.id, UVICORN_WSKIT, loop)
            if mine is None:
                continue
            rows: list[list[str]] = []
            for rec in records:
                if (
                    rec["case"] != case.id
                    or rec["server"] == UVICORN_WSKIT
                    or rec.get("loop") not in (loop, None)
                ):
                    continue
                cells = [rec["server"].removeprefix("uvicorn-") + _noisy(rec)]
                for metric in case.ratios:
                    cells.append(_ratio(_primary_value(mine, metric), _primary_value(rec, metric)))
                    if is_rate(metric):
                        cells.append(_ratio(per_cpu(mine, metric), per_cpu(rec, metric)))
                rows.append(cells)
            if not rows:
                continue
            headers = ["uvicorn --ws"]
            for metric in case.ratios:
                headers.append(f"{metric.label} ratio")
                if is_rate(metric):
                    headers.append(f"{per_cpu_metric(metric).label} ratio")
            out.append(
                f"{case.id}/{loop}: uvicorn --ws wskit.uvicorn:WebSocketProtocol ÷ uvicorn with"
                " each of its own (higher is better for wskit)"
            )
            out.append(table(headers, rows))
            out.append("")
    return "\n".join(out)


def scaleout_tables(cases: Sequence[Case], records: Sequence[Record], loops: Sequence[str]) -> str:
    """B7: the hub and python-socketio side by side, each figure and wskit ÷ socketio.

    One table per case and event loop; the figure of the case's goal
    (deliveries per node CPU-second) says ``met`` or ``MISSED``.
    """
    out: list[str] = []
    for case in cases:
        goal = case.versus
        if goal is None:
            continue
        for loop in loops:
            ours = _find(records, case.id, HUB, loop)
            theirs = _find(records, case.id, goal.server, loop)
            if ours is None and theirs is None:
                continue
            rows: list[list[str]] = []
            for metric in case.metrics:
                a = _figure(ours, metric)
                b = _figure(theirs, metric)
                verdict = ""
                if metric.key == goal.metric.key:
                    verdict = f"goal >= {goal.target:.1f}x"
                    if a is not None and b:
                        verdict += ": met" if a / b >= goal.target else ": MISSED"
                ratio = "-" if a is None or not b else f"{a / b:.2f}x"
                rows.append(
                    [metric.label, _fmt(a, metric.fmt), _fmt(b, metric.fmt), ratio, verdict]
                )
            for key, label in (
                ("server", "node CPU, % of core 0"),
                ("client", "loader CPU, %"),
                ("redis", "redis CPU, %"),
                ("other", "other CPU, %"),
            ):
                cells = [_pct(((rec or {}).get("cpu") or {}).get(key)) for rec in (ours, theirs)]
                rows.append([label, *cells, "", ""])
            loads = [
                f"{rec['label']} {rec['loadavg'][0]:.2f}"
                for rec in (ours, theirs)
                if rec is not None and rec.get("loadavg")
            ]
            out.append(
                f"{case.id}/{loop}: wskit hub beside python-socketio's AsyncRedisManager, same run"
                f" (load average at the start: {', '.join(loads) or '-'})"
            )
            headers = ["figure", HUB + _noisy(ours or {}), goal.server + _noisy(theirs or {})]
            out.append(table([*headers, "wskit ÷ socketio", ""], rows))
            for rec in (ours, theirs):
                if rec is not None and (rec.get("error") or rec.get("skipped")):
                    why = rec.get("error") or rec.get("skipped")
                    out.append(f"    note: {rec['label']}: {str(why)[:300]}")
            out.append("")
    return "\n".join(out)


def _figure(rec: Record | None, metric: Metric) -> float | None:
    """A figure of ``rec`` as it is, zero included (``lost``), ``None`` when absent."""
    if rec is None or rec.get("skipped"):
        return None
    value = (rec.get("figures") or {}).get(metric.key)
    return float(value) if isinstance(value, int | float) else None
