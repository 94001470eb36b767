"""The drill's numbers: per phase and client, from the workload's calls and the servers' counters.

Why a module of its own: this is where the two sources meet — calls, latency and success as the
workload measured them around each call; attempts and requests per region as the servers counted them
per call tag; DNS queries as the DNS server counted them per client name — and the rules that join
them (a call belongs to the phase it started in; ``offered`` is threads x rate x seconds; a call still
blocked at the end is failed, its time so far its latency) should be read in one place. Each server is
read once, so every number taken from it comes from one consistent snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .clients import call_tag
from .config import PRIMARY, SECONDARY, DrillConfig
from .phases import Phase
from .workload import Call, Workload

__all__ = ["DrillResult", "collect", "percentile"]


@dataclass
class DrillResult:
    """Numbers of one run. ``phases[i]["clients"][label]`` holds the per-phase metrics; ``botocore``
    the version the drill ran on and its default retry mode (see ``clients.botocore_info``); ``aio``
    the asyncio rows' versions, each loop's lag (heartbeat) and resilient_aws.aio's ``stats()``, or
    ``{"not_run": reason}`` where aiobotocore is not installed."""

    config: dict[str, Any]
    phases: list[dict[str, Any]]
    totals: dict[str, dict[str, Any]]
    servers: dict[str, Any]
    timeline: dict[str, Any]
    resilient_stats: dict[str, Any]
    duration: float
    notes: list[str] = field(default_factory=list)
    botocore: dict[str, str] = field(default_factory=dict)
    aio: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[index]


def collect(drill: Any, cfg: DrillConfig, phases: list[Phase], workload: Workload, boundaries: list[float],
            dns_marks: list[dict[str, int]], resilient_stats: dict[str, Any], botocore: dict[str, str],
            duration: float, aio: dict[str, Any] | None = None) -> DrillResult:
    """Join the workload's calls (finished, and still blocked at the end) with one snapshot of each
    server's counters. ``boundaries`` are the phases' start times and the end (seconds since the
    drill started); ``dns_marks`` each client's DNS query count at those moments; ``aio`` what the
    asyncio rows add (see :class:`DrillResult`)."""
    specs = workload.specs
    finished = {label: list(calls) for label, calls in workload.calls.items()}
    unfinished = workload.unfinished(boundaries[-1] + cfg.grace_seconds)
    snapshots = {region: drill.counts(region) for region in drill.regions}
    tags = {region: counts.by_tag for region, counts in snapshots.items()}
    phase_rows: list[dict[str, Any]] = []
    for i, phase in enumerate(phases):
        rows: dict[str, Any] = {}
        for label, _, title in specs:
            calls = [c for c in finished[label] if c.phase == i]
            stuck = [c for c in unfinished[label] if c.phase == i]
            rows[label] = _row(title, calls, stuck, east=tags[PRIMARY].get(call_tag(label, i), 0),
                               west=tags[SECONDARY].get(call_tag(label, i), 0),
                               dns_queries=dns_marks[i + 1][label] - dns_marks[i][label],
                               offered=cfg.threads * cfg.rate * (boundaries[i + 1] - boundaries[i]))
        phase_rows.append({"name": phase.name, "title": phase.title, "planned_seconds": phase.seconds,
                           "start": round(boundaries[i], 3), "end": round(boundaries[i + 1], 3), "clients": rows})
    totals: dict[str, dict[str, Any]] = {}
    for label, _, title in specs:
        n = sum(p["clients"][label]["calls"] for p in phase_rows)
        ok = sum(p["clients"][label]["ok"] for p in phase_rows)
        attempts = sum(p["clients"][label]["server_attempts"] for p in phase_rows)
        offered = sum(p["clients"][label]["offered"] for p in phase_rows)
        totals[label] = {"client": title, "calls": n, "ok": ok, "failed": n - ok,
                         "success_pct": round(100.0 * ok / n, 2) if n else None,
                         "offered": round(offered, 1),
                         "served_pct_of_offered": round(min(100.0, 100.0 * ok / offered), 2) if offered else None,
                         "server_attempts": attempts,
                         "attempts_per_call": round(attempts / n, 3) if n else None,
                         "dns_queries": dns_marks[-1][label] - dns_marks[0][label]}
    servers = {region: counts.to_dict() for region, counts in snapshots.items()}
    timeline = _timeline(drill, finished, boundaries[-1], specs)
    aio = dict(aio or {})
    return DrillResult(asdict(cfg), phase_rows, totals, servers, timeline, resilient_stats, round(duration, 3),
                       _notes(cfg, botocore, aio), botocore, aio)


def _row(title: str, calls: list[Call], stuck: list[Call], *, east: int, west: int, dns_queries: int,
         offered: float) -> dict[str, Any]:
    everything = calls + stuck
    ok = sum(c.ok for c in calls)
    n = len(everything)
    errors: dict[str, int] = {}
    for c in everything:
        if c.error:
            errors[c.error] = errors.get(c.error, 0) + 1
    latencies = [c.latency for c in everything]
    return {
        "client": title,
        "calls": n,
        "ok": ok,
        "failed": n - ok,
        "unfinished": len(stuck),
        "success_pct": round(100.0 * ok / n, 2) if n else None,
        "offered": round(offered, 1),
        "served_pct_of_offered": round(min(100.0, 100.0 * ok / offered), 2) if offered else None,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "server_attempts": east + west,
        "attempts_per_call": round((east + west) / n, 3) if n else None,
        "dns_queries": dns_queries,
        "dns_queries_per_call": round(dns_queries / n, 3) if n else None,
        "requests_by_region": {PRIMARY: east, SECONDARY: west},
        "errors": errors,
    }


def _notes(cfg: DrillConfig, botocore: dict[str, str], aio: dict[str, Any]) -> list[str]:
    default, source = botocore.get("default_retry_mode", "unknown"), botocore.get("default_from", "botocore")
    origin = "botocore's own default" if source == "botocore" else f"set by {source}"
    return [
        f"botocore {botocore.get('version', '?')}: a client created without a retries config gets {default} "
        f"retry mode here ({origin}; AWS_RETRY_MODE or retry_mode in ~/.aws/config change it); the drill runs "
        "legacy mode, boto3's default on 2025-10-20, and standard mode side by side whatever the default",
        "'offered' is the calls the workers were scheduled to make (threads x rate x seconds): a worker "
        "blocked inside a call makes none, so 'served' = ok / offered",
        "a call belongs to the phase it started in; attempts are counted by the servers per call tag",
        f"resilient_aws: default Policy except breaker open_time {cfg.breaker_open_time} s "
        "(so recovery fits the drill) and PutItem allowed to fail over",
        "botocore clients resolve through the drill's DNS server on every new connection, without a cache, "
        "as a stock process does",
        f"calls still blocked {cfg.grace_seconds:.1f} s after the last phase are counted as failed "
        "('unfinished'), with their time so far as latency",
        *_aio_notes(aio),
    ]


def _aio_notes(aio: dict[str, Any]) -> list[str]:
    if not aio or "not_run" in aio:
        return []
    notes = [f"asyncio rows: {aio.get('tasks', '?')} tasks per client on one event loop, each client in a process "
             "of its own (so that its loop's lag is its own), the same schedule, tags and counting as the threads"]
    retries = aio.get("aiobotocore_retries")
    if retries:
        notes.append(f"aiobotocore: its default retries here (mode {retries.get('mode')}); aiohttp's connector "
                     "defaults, its own DNS cache (10 s) included, asking the drill's DNS server without a cache "
                     "of its own on a miss, as getaddrinfo does for a stock process")
    return notes


def _ms(value: float | None) -> float | None:
    return round(value * 1000.0, 1) if value is not None else None


def _timeline(drill: Any, calls: dict[str, list[Call]], end: float,
              specs: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    """Per second and client: calls started, calls ok (client side) and HTTP attempts (server side)."""
    seconds = int(end) + 1
    out: dict[str, Any] = {"seconds": list(range(seconds)), "clients": {}}
    by_host: dict[str, dict[int, int]] = {}
    for region in drill.regions:
        for host, series in drill.endpoint(region).per_second_by_host().items():
            for s, n in series.items():
                by_host.setdefault(host, {})
                by_host[host][s] = by_host[host].get(s, 0) + n
    for label, dns_label, title in specs:
        started = [0] * seconds
        ok = [0] * seconds
        for c in calls[label]:
            s = int(c.start)
            if 0 <= s < seconds:
                started[s] += 1
                ok[s] += c.ok
        attempts = [0] * seconds
        for host, series in by_host.items():
            if host.startswith(f"{dns_label}."):
                for s, n in series.items():
                    if 0 <= s < seconds:
                        attempts[s] += n
        out["clients"][label] = {"title": title, "calls": started, "ok": ok, "attempts": attempts}
    return out
