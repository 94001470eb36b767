"""The drill's outputs: the comparison table, the JSON file, the optional timeline plot.

Why a module of its own: the numbers (:mod:`~resilient_aws.drill.metrics`) are the drill's result; how
they are shown is not, and matplotlib, an optional extra, is imported here only.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from .clients import modes_line
from .config import PRIMARY, SECONDARY
from .metrics import DrillResult

__all__ = ["aio_line", "format_table", "lag_line", "write_json", "write_plot"]

_W = 18  # client column


def _header() -> list[str]:
    return [
        f"{'client':<{_W}} {'offered':>7} {'calls':>6} {'ok %':>6} {'served':>7} {'p50 ms':>7} {'p99 ms':>8} "
        f"{'attempts':>8} {'DNS q':>6} {PRIMARY:>10} {SECONDARY:>10}",
        f"{'':<{_W}} {'':>7} {'':>6} {'':>6} {'% offrd':>7} {'':>7} {'':>8} "
        f"{'/call':>8} {'/call':>6} {'requests':>10} {'requests':>10}",
    ]


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(title: str, r: dict[str, Any]) -> str:
    p99 = _num(r["p99_ms"], ".0f") + ("+" if r.get("unfinished") else "")
    return (f"{title:<{_W}} {r['offered']:>7.0f} {r['calls']:>6} {_num(r['success_pct'], '.1f'):>6} "
            f"{_num(r['served_pct_of_offered'], '.1f'):>7} {_num(r['p50_ms'], '.0f'):>7} {p99:>8} "
            f"{_num(r['attempts_per_call'], '.2f'):>8} {_num(r['dns_queries_per_call'], '.2f'):>6} "
            f"{r['requests_by_region'][PRIMARY]:>10} {r['requests_by_region'][SECONDARY]:>10}")


def _clients(result: DrillResult) -> list[tuple[str, str]]:
    """(label, title) of the clients of ``result``, in table order."""
    return [(label, str(t["client"])) for label, t in result.totals.items()]


def aio_line(aio: dict[str, Any]) -> str | None:
    """What the asyncio rows ran on, e.g. ``aiobotocore 3.10.0 (botocore 1.43.117, aiohttp 3.14.5):
    "aiobotocore" = its default retries (mode legacy), ...``; None when they did not run."""
    versions = aio.get("versions")
    if not versions:
        return None
    retries = aio.get("aiobotocore_retries") or {}
    mode = f"its default retries (mode {retries['mode']})" if retries.get("mode") else "its default retries"
    return (f"aiobotocore {versions.get('aiobotocore', '?')} (botocore {versions.get('botocore', '?')}, aiohttp "
            f"{versions.get('aiohttp', '?')}): \"aiobotocore\" = {mode}, \"resilient_aws.aio\" = "
            "resilient_aws.aio.Session with resilient_aws's policy; each in a process of its own")


def lag_line(aio: dict[str, Any]) -> str | None:
    """The event loops' lag, measured by a heartbeat task on each asyncio client's loop: how late it
    woke at most and at the 99th percentile, and (Linux) the most it was held by what ran on the loop,
    i.e. the lateness less the loop thread's wait for a CPU."""
    lags = aio.get("loop_lag") or {}
    if not lags:
        return None
    titles = {"aio": "resilient_aws.aio", "aiobotocore": "aiobotocore"}
    parts = []
    for label, lag in lags.items():
        held = "" if lag.get("held_max_ms") is None else f", held by the loop at most {lag['held_max_ms']:.1f} ms"
        parts.append(f"{titles.get(label, label)} late by at most {_num(lag.get('max_ms'), '.1f')} ms "
                     f"(p99 {_num(lag.get('p99_ms'), '.1f')} ms{held})")
    interval = next(iter(lags.values())).get("interval_ms", 1)
    return (f"Event loop lag (a heartbeat task every {interval:g} ms on each asyncio client's loop): "
            + "; ".join(parts) + ". 'Held' leaves out the time the OS ran other processes instead.")


def format_table(result: DrillResult) -> str:
    """One block per phase, one row per client; attempts, DNS queries and requests per region are the
    servers' counts, calls and latency the workload's. A first line names the botocore version and the
    retry mode of each botocore row (after a line naming aiobotocore's, when the asyncio rows ran);
    the asyncio loops' lag follows the verdict."""
    lines = [""]
    about_aio = aio_line(result.aio)
    if about_aio:
        lines.append(about_aio)
    if result.botocore and any(label in ("legacy", "standard") for label in result.totals):
        lines.append(modes_line(result.botocore))
    lines.extend(_header())
    clients = _clients(result)
    for i, phase in enumerate(result.phases, 1):
        lines.append(f"-- {i}/{len(result.phases)} {phase['name']}: {phase['title']} "
                     f"({phase['end'] - phase['start']:.1f} s)")
        for label, title in clients:
            lines.append(_row(title, phase["clients"][label]))
            unfinished = phase["clients"][label]["unfinished"]
            if unfinished:
                lines.append(f"{'':<4}{unfinished} call(s) still blocked at the end: counted as failed, p99 is a floor")
    lines.append("-- whole run")
    for label, title in clients:
        t = result.totals[label]
        dns_per_call = t["dns_queries"] / t["calls"] if t["calls"] else None
        lines.append(f"{title:<{_W}} {t['offered']:>7.0f} {t['calls']:>6} {_num(t['success_pct'], '.1f'):>6} "
                     f"{_num(t['served_pct_of_offered'], '.1f'):>7} {'':>7} {'':>8} "
                     f"{_num(t['attempts_per_call'], '.2f'):>8} {_num(dns_per_call, '.2f'):>6}")
    lines.append("")
    lines.append(_verdict(result))
    lag = lag_line(result.aio)
    if lag:
        lines.append(lag)
    lines.append("")
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines) + "\n"


def _verdict(result: DrillResult) -> str:
    dns = next((p for p in result.phases if p["name"] == "dns-empty"), None)
    if dns is None:
        return ""
    parts = [f"{title} {_num(dns['clients'][label]['served_pct_of_offered'], '.0f')}%"
             for label, title in _clients(result)]
    return "Offered load served while the us-east-1 DNS record was empty: " + ", ".join(parts) + "."


def write_json(result: DrillResult, path: str) -> None:
    """The drill's numbers as JSON, written atomically."""
    write_json_atomically(result.to_dict(), path, prefix=".drill-")


def write_json_atomically(data: object, path: str, prefix: str) -> None:
    """Temporary file + rename, so a reader never sees half a report."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_plot(result: DrillResult, path: str) -> str | None:
    """Draw the share of the offered load served and the server-side attempts/s per client over time,
    phases shaded. (Served, not "success among calls made": a thread stuck in retries makes no calls.)

    Returns None on success, or a message saying how to install matplotlib (an optional extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("--plot needs matplotlib, an optional extra: pip install 'resilient-aws[plot]' "
                "(or pip install matplotlib); the drill's numbers are above and in --json")
    timeline = result.timeline
    seconds = timeline["seconds"]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    shades = ("#ffffff", "#fde2e2", "#fdebd0", "#e8daef", "#e2f0d9")
    for i, phase in enumerate(result.phases):
        for ax in (top, bottom):
            ax.axvspan(phase["start"], phase["end"], color=shades[i % len(shades)], alpha=0.8, lw=0)
        top.text((phase["start"] + phase["end"]) / 2, 104, phase["name"], ha="center", va="bottom", fontsize=8)
    offered = result.config["threads"] * result.config["rate"]  # calls per second per client
    xs = [s + 0.5 for s in seconds]
    for label, title in _clients(result):
        series = timeline["clients"][label]
        served = [min(100.0, 100.0 * ok / offered) for ok in series["ok"]]
        top.plot(xs[:-1], served[:-1], marker=".", label=title)  # the last second is partial
        bottom.plot(xs, series["attempts"], marker=".", label=title)
    top.set_ylabel("offered load served (%)")
    top.set_ylim(-5, 112)
    bottom.set_ylabel("HTTP attempts/s (server)")
    bottom.set_xlabel("seconds")
    top.legend(loc="lower left", fontsize=8)
    fig.suptitle("resilient_aws outage drill", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
