"""``python -m resilient_aws drill --fleet N``: N processes against the same servers, with and without Redis.

Why: shared state (:class:`~resilient_aws.RedisState`, ``docs/fleet.md``) exists because a fleet is
many OS processes that learn nothing from each other's memory. The three-client drill
(:mod:`~resilient_aws.drill.runner`) runs one process; this one starts N real worker processes
(:class:`~resilient_aws.testing.fleet.Fleet`: a fresh interpreter each, with its own
``resilient_aws.Session``), runs the same scenario twice with the same offered load, once with every
process's session sharing a real ``redis-server`` on loopback and once with each process alone, and
prints the two side by side, as the *servers* saw them: the endpoint's own counters, sampled every
10 ms (:class:`~resilient_aws.testing.fleet.EndpointTimeline`), for requests and probes; the
processes' own records for calls, breaker openings and returns.

The scenario, per mode (seconds full / ``--quick``):

1. **healthy** (3 / 1.5): every process calls GetItem on us-east-1 through the drill's DNS name; with
   shared state, each publishes its DNS answer to the fleet;
2. **quiet**: the load pauses for one breaker window, so that every breaker meets the outage with an
   empty window, as the breakers of a fleet of processes too small for their own window to decide do
   (after a window full of successes, the failure ratio decides, with or without sharing);
3. **503** (5 / 3): us-east-1 answers 503 to every request;
4. **healed** (7.5 / 6, whenever the processes come back, so that both modes offer the same calls):
   each process's return is the time from the heal to its first call served;
5. **cold start**: the DNS record emptied (NOERROR, no records: the 2025-10-20 answer), then one more
   process started: with shared state it can serve the fleet's last good addresses; alone it has none.

No failover: us-west-2 runs (the drill's world) but is not called, since calls moving there would hide
what the fleet does to us-east-1 and make a cold process succeed for another reason.

Policy: ``BreakerPolicy(min_calls=20, window=W, open_time=1.0)`` (``W`` = 2 s at the default load:
long enough for a process alone to reach ``min_calls`` attempts in one window), everything else the
defaults (3 attempts, retry budget), DNS aimed at the drill's server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, TextIO

from .config import PRIMARY, SECONDARY
from .report import write_json_atomically

if TYPE_CHECKING:  # pragma: no cover
    from ..testing.drill_env import OutageDrill
    from ..testing.fleet import EndpointTimeline, Fleet, FleetPlan
    from ..testing.redis_server import LoopbackRedisServer

__all__ = ["MAX_PROCESSES", "MODES", "FleetDrillResult", "FleetDrillUnavailable", "FleetTimes",
           "format_fleet_table", "run_fleet_drill", "times_for", "write_fleet_json"]

#: The fleet's size: at least two processes (one is the plain drill), at most this many.
MAX_PROCESSES = 32
#: (key, title) of each mode, in the order they run and are shown.
MODES: tuple[tuple[str, str], ...] = (("shared", "shared (Redis)"), ("alone", "alone"))
TABLE = "fleet"
KEY = {"pk": {"S": "k"}}
MIN_CALLS = 20
OPEN_TIME = 1.0
#: Errors an endpoint outage (or an empty DNS record) gives a caller; anything else is shown as a note.
OUTAGE_ERRORS = ("ClientError:ServiceUnavailable", "CircuitOpenError", "EndpointConnectionError",
                 "ConnectionClosedError", "DnsResolutionError")
OPENED_BY_THE_FLEET = "opened by the fleet"


class FleetDrillUnavailable(RuntimeError):
    """What ``--fleet`` needs beyond the drill extra is missing: ``redis-server``, or the redis client library."""


@dataclass(frozen=True)
class FleetTimes:
    """How long each phase lasts (seconds), and the bounds of the waits that end on a condition."""

    healthy: float
    outage: float
    return_bound: float    # longest wait for every process to be back after the heal
    settle: float          # the healed phase lasts return_bound + settle, whenever the processes are back
    cold_bound: float      # longest wait for the late process's calls (after it started)
    dns_bound: float = 5.0  # longest wait for the fleet's DNS answer to be in Redis


def times_for(quick: bool) -> FleetTimes:
    # a process alone doubles its open time after each failed probe (1, 2, 4 s...): a probe that fails
    # just before the heal may leave it open for up to 4 s x 1.2 more (3 s outage), hence the bounds
    if quick:
        return FleetTimes(healthy=1.5, outage=3.0, return_bound=5.5, settle=0.5, cold_bound=8.0)
    return FleetTimes(healthy=3.0, outage=5.0, return_bound=6.5, settle=1.0, cold_bound=10.0)


def breaker_window(threads: int, rate: float) -> float:
    """The breaker window: long enough for a process alone to count ``min_calls`` attempts at its own
    offered load (1.5 x), at least 2 s, at most 10 s (the quiet pause lasts one window)."""
    return float(min(10, max(2, math.ceil(1.5 * MIN_CALLS / (threads * rate)))))


@dataclass
class FleetDrillResult:
    """Numbers of one ``--fleet`` run: ``modes["shared"]`` and ``modes["alone"]`` hold the same figures."""

    config: dict[str, Any]
    servers: dict[str, Any]
    modes: dict[str, dict[str, Any]]
    duration: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the run ---------------------------------------------------------------------------------------------
def run_fleet_drill(processes: int, quick: bool = False, out: TextIO | None = None, *, threads: int = 4,
                    rate: float = 5.0, port: int = 0, dns: str = "embedded") -> FleetDrillResult:
    """Start the loopback world (moto for the drill's regions, its DNS server, a ``redis-server``) and
    ``processes`` worker processes, run the scenario with shared state and alone, and return the numbers
    (the caller prints :func:`format_fleet_table`). Progress lines go to ``out``.

    ``threads`` per process, each offering ``rate`` GetItem calls per second: the same load in both modes.
    Raises :class:`FleetDrillUnavailable` without ``redis-server`` or the redis library,
    ``PortInUseError`` when ``port`` is taken, ``BindUnavailable`` for ``dns="bind"`` without BIND.
    Every server and process is stopped on every exit path, Ctrl-C included.
    """
    if not 2 <= processes <= MAX_PROCESSES:
        raise ValueError(f"a fleet drill needs 2..{MAX_PROCESSES} processes, got {processes!r}")
    if threads < 1 or not 0 < rate <= 100:
        raise ValueError(f"threads must be >= 1 and rate within (0, 100], got {threads!r}, {rate!r}")
    if dns not in ("embedded", "bind"):
        raise ValueError(f"dns must be 'embedded' or 'bind', got {dns!r}")
    if importlib.util.find_spec("redis") is None:
        raise FleetDrillUnavailable("--fleet needs the redis client library (the processes share state through "
                                    "Redis): pip install 'resilient-aws[redis]'")
    from ..policy import BreakerPolicy, Policy
    from ..testing.drill_env import OutageDrill
    from ..testing.fleet import EndpointTimeline, Fleet, FleetPlan
    from ..testing.redis_server import LoopbackRedisServer, RedisServerUnavailable

    out = out or sys.stdout
    started = time.monotonic()
    times = times_for(quick)
    window = breaker_window(threads, rate)
    policy = Policy(breaker=BreakerPolicy(min_calls=MIN_CALLS, window=window, open_time=OPEN_TIME))
    try:
        redis_server = LoopbackRedisServer()
        redis_server.start()
    except RedisServerUnavailable as exc:
        raise FleetDrillUnavailable(f"--fleet needs redis-server (the fleet's shared state runs in a real Redis "
                                    f"on loopback): {exc}") from exc
    dns_backend = None
    drill = None
    timeline = None
    fleet = None
    try:
        if dns == "bind":
            from .bind import BindDnsServer

            dns_backend = BindDnsServer()
        drill = OutageDrill((PRIMARY, SECONDARY), port=port, dns=dns_backend)
        drill.start()
        drill.create_table(TABLE, [{**KEY, "v": {"S": "fleet"}}])
        base = FleetPlan.for_drill(drill, policy=policy, table=TABLE, key=KEY, region=PRIMARY, threads=threads,
                                   rate=rate)
        config = {"processes": processes, "quick": quick, "threads": threads, "rate": rate, "dns": dns,
                  "offered_per_second": processes * threads * rate, "region": PRIMARY, "failover": False,
                  "breaker": asdict(policy.breaker), "retry": asdict(policy.retry), "budget": asdict(policy.budget),
                  "times": asdict(times), "pause": window + 0.2}
        servers = {"port": drill.port, "dns": f"{drill.dns_host}:{drill.dns_port}", "redis": redis_server.url,
                   "redis_version": _redis_version(redis_server)}
        out.write(_banner(drill, redis_server, config, servers))
        out.flush()
        timeline = EndpointTimeline(drill.endpoint(PRIMARY)).start()
        t_spawn = time.monotonic()
        fleet = Fleet(processes, start_timeout=30.0 + 2.0 * processes, command_timeout=30.0, stop_timeout=10.0)
        fleet.start()
        out.write(f"  {processes} worker processes started in {time.monotonic() - t_spawn:.1f} s\n")
        out.flush()
        modes: dict[str, dict[str, Any]] = {}
        for mode, title in MODES:
            # a namespace of its own: a new fleet as far as Redis knows
            plan = (replace(base, redis_url=redis_server.url) if mode == "shared" else base).with_namespace()
            modes[mode] = _scenario(mode, title, fleet, drill, timeline, plan, redis_server, times, window, out)
        notes = _notes(modes)
        return FleetDrillResult(config, servers, modes, time.monotonic() - started, notes)
    finally:
        if fleet is not None:
            fleet.stop()
        if timeline is not None:
            timeline.stop()
        if drill is not None:
            drill.stop()
        elif dns_backend is not None:
            with contextlib.suppress(Exception):
                dns_backend.stop()
        redis_server.stop()


def _scenario(mode: str, title: str, fleet: Fleet, drill: OutageDrill, timeline: EndpointTimeline, plan: FleetPlan,
              redis_server: LoopbackRedisServer, times: FleetTimes, window: float, out: TextIO) -> dict[str, Any]:
    """One mode: healthy, quiet, 503, healed, cold start; then the numbers (see the module docstring)."""
    from ..testing.fleet import FaultPhases, FleetResult, median

    shared = plan.redis_url is not None
    phases = FaultPhases(drill, PRIMARY)
    phases.set("healthy")
    workers = list(fleet.names)
    late = f"late-{mode}"

    def say(text: str) -> None:
        out.write(f"-- {title}: {text}\n")
        out.flush()

    if shared:
        redis_server.reset_stats()
    t_begin = time.monotonic()
    t_run = fleet.run(plan)
    say(f"healthy ({times.healthy:g} s; sessions built in {t_run - t_begin:.1f} s)")
    fleet.watch(max(0.0, t_run + times.healthy - time.monotonic()))
    dns_published: bool | None = None
    if shared:  # the fleet publishes its DNS answer asynchronously: what the late process will read
        dns_published = _dns_published(fleet, redis_server, plan.namespace, drill.host_name(PRIMARY), times.dns_bound)
    say(f"load paused {window + 0.2:g} s, so that every breaker meets the outage with an empty window")
    fleet.pause()
    fleet.watch(window + 0.2)
    t_503 = phases.set("503")
    t_resume = fleet.resume()
    say(f"503: {PRIMARY} answers 503 to every request ({times.outage:g} s)")
    fleet.watch(max(0.0, t_resume + times.outage - time.monotonic()))
    t_heal = phases.set("healed")
    fleet.wait_until(lambda r: None not in r.return_after(t_heal, workers).values(), times.return_bound, 0.05)
    returned = fleet.result.return_after(t_heal, workers)
    back = [v for v in returned.values() if v is not None]
    say(f"healed: {len(back)}/{len(workers)} processes served again"
        + (f", the last {max(back):.2f} s after the heal" if back else ""))
    # a phase of fixed length (whenever the processes came back), so both modes offer the same calls
    fleet.watch(max(0.0, t_heal + times.return_bound + times.settle - time.monotonic()))
    t_empty = phases.set("dns_empty")
    t_late = t_empty
    try:
        fleet.add_worker(plan, name=late)
        t_late = time.monotonic()
        fleet.wait_until(lambda r: len(r.of(late).calls) >= 2 * plan.threads, times.cold_bound, 0.05)
        fleet.halt([late])
    finally:
        fleet.retire([late])
    late_calls = fleet.result.of(late)
    say(f"cold start: DNS record emptied, one more process started in {t_late - t_empty:.1f} s: "
        f"{late_calls.succeeded} of {len(late_calls.calls)} calls served")
    phases.set("healthy")
    result = fleet.halt()
    timeline.sample_now()
    redis = None
    if shared:
        stats = redis_server.commandstats()
        redis = {"evalsha": stats.get("evalsha", 0), "publish": stats.get("publish", 0)}

    # -- the numbers --------------------------------------------------------------------------------------
    main = FleetResult([c for c in result.calls if c.worker in workers and c.start < t_empty],
                       [e for e in result.events if e.worker in workers],
                       [g for g in result.logs if g.worker in workers])
    outage_to = phases.mark("healed").before
    requests = timeline.count(t_503, outage_to)
    outage_calls = main.between(t_503, outage_to).calls
    silence = OPEN_TIME * (1 - plan.policy.breaker.open_jitter) / 2  # no probe comes this soon after an opening
    burst, quiet = timeline.opening_burst(t_503, outage_to, silence)
    openings = {w: e for w, e in main.openings_after(t_503).items() if e.t < outage_to}
    probes = timeline.count(quiet, outage_to) if burst else 0
    strict = OPEN_TIME - 2 * timeline.interval  # two probes 1 s apart may be seen up to two samples closer
    most = timeline.max_in_window(quiet, outage_to, strict) if burst else 0
    return_median = median(back) if back else None
    return {
        "title": title,
        "shared": shared,
        "processes": len(workers),
        "calls": len(main.calls),
        "ok": main.succeeded,
        "failed": main.failed,
        "errors": dict(main.errors()),
        "outage": {
            "seconds": round(outage_to - t_resume, 3),
            "requests": requests,
            "calls": len(outage_calls),
            "attempts_per_call": requests / len(outage_calls) if outage_calls else None,
            "requests_until_all_stopped": burst,
            "all_stopped_after": round(quiet - t_resume, 3) if burst else None,
            "breakers_opened": len(openings),
            "opened_by_the_fleet": sum(1 for e in openings.values() if e.detail.get("reason") == OPENED_BY_THE_FLEET),
            "probes": probes,
            "probes_per_open_interval_max": most,
            "requests_by_process": timeline.by_tag(t_503, outage_to),
        },
        "heal": {
            "return_median": return_median,
            "return_max": max(back) if back else None,
            "returned": {w: None if v is None else round(v, 3) for w, v in returned.items()},
            "not_back": sum(1 for v in returned.values() if v is None),
        },
        "cold_start": {
            "started_after": round(t_late - t_empty, 3),
            "calls": len(late_calls.calls),
            "ok": late_calls.succeeded,
            "failed": late_calls.failed,
            "errors": dict(late_calls.errors()),
            "requests_served": timeline.count(t_empty, time.monotonic(), tag=late),
            "dns_published_before": dns_published,
        },
        "redis": redis,
        "warnings": [f"{g.worker}: {g.message}" for g in result.logs][:50],
    }


def _dns_published(fleet: Fleet, redis_server: LoopbackRedisServer, namespace: str, host: str,
                   bound: float) -> bool:
    """Whether the fleet's answer for ``host`` is in Redis, waiting up to ``bound`` (collecting meanwhile)."""
    key = f"{namespace}:dns:{host}"

    def there(_: Any) -> bool:
        try:
            return bool(redis_server.command("EXISTS", key))
        except Exception:
            return False

    return fleet.wait_until(there, bound, 0.1)


def _redis_version(server: LoopbackRedisServer) -> str:
    try:
        return str(server.command("INFO", "server").get("redis_version", "?"))
    except Exception:  # informational only
        return "?"


def _banner(drill: OutageDrill, redis_server: LoopbackRedisServer, config: dict[str, Any],
            servers: dict[str, Any]) -> str:
    t, b = config["times"], config["breaker"]
    lines = [
        f"resilient_aws fleet drill: {config['processes']} processes against the same loopback servers, "
        "with shared state through Redis and alone",
        f"  servers: moto {PRIMARY} on 127.0.0.1:{drill.port} ({SECONDARY} on 127.0.0.2 runs, not called: no "
        f"failover); DNS ({config['dns']}) on {servers['dns']}; redis-server {servers['redis_version']} on "
        f"{redis_server.host}:{redis_server.port}",
        f"  load: {config['processes']} processes x {config['threads']} threads x {config['rate']:g} GetItem/s = "
        f"{config['offered_per_second']:g} calls/s, the same in both modes",
        f"  policy: breaker min_calls {b['min_calls']}, window {b['window']:g} s, open_time {b['open_time']:g} s; "
        f"retries and retry budget: the defaults",
        f"  per mode: healthy {t['healthy']:g} s; load paused {config['pause']:g} s; 503 {t['outage']:g} s; "
        f"healed {t['return_bound'] + t['settle']:g} s; "
        "cold start (DNS record emptied, one more process)",
        "",
    ]
    return "\n".join(lines) + "\n"


def _notes(modes: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    for mode in modes.values():
        odd = {e: n for e, n in mode["errors"].items() if not e.endswith(OUTAGE_ERRORS)}
        if odd:
            notes.append(f"{mode['title']}: errors other than the outage's: {odd}")
        if mode["heal"]["not_back"]:
            notes.append(f"{mode['title']}: {mode['heal']['not_back']} process(es) not served again within the "
                         "bound after the heal")
        if mode["cold_start"]["calls"] == 0:
            notes.append(f"{mode['title']}: the late process made no call within the bound")
        if mode["cold_start"]["dns_published_before"] is False:
            notes.append(f"{mode['title']}: the fleet's DNS answer was not in Redis before the record was emptied")
        redis_trouble = [w for w in mode["warnings"] if "shared state" in w]
        if redis_trouble:
            notes.append(f"{mode['title']}: {len(redis_trouble)} warning(s) about shared state logged by the "
                         f"processes, first: {redis_trouble[0][:150]}")
    return notes


# -- the table and the JSON ------------------------------------------------------------------------------
_L = 54  # label column
_C = 16  # each mode's column


def _fmt(value: Any, spec: str = "d", suffix: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) + suffix


def _line(label: str, values: Sequence[str]) -> str:
    return f"{label:<{_L}}" + "".join(f"{v:>{_C}}" for v in values)


def format_fleet_table(result: FleetDrillResult) -> str:
    """The modes side by side, one row per figure; requests and probes are the endpoint's counts."""
    ms = [result.modes[m] for m, _ in MODES if m in result.modes]
    outage_s = max((m["outage"]["seconds"] for m in ms), default=0.0)

    def row(label: str, get: Any) -> str:
        return _line(label, [get(m) for m in ms])

    lines = [
        "",
        _line("", [m["title"] for m in ms]),
        row("calls (the fleet's, healthy to healed)", lambda m: _fmt(m["calls"])),
        row("failed calls", lambda m: _fmt(m["failed"])),
        f"503 phase ({outage_s:.1f} s)",
        row("  requests the endpoint saw", lambda m: _fmt(m["outage"]["requests"])),
        row("  attempts per call", lambda m: _fmt(m["outage"]["attempts_per_call"], ".2f")),
        row("  requests until every process had stopped", lambda m: _fmt(m["outage"]["requests_until_all_stopped"])),
        row("  every process stopped after", lambda m: _fmt(m["outage"]["all_stopped_after"], ".2f", " s")),
        row("  breakers opened (by the fleet)",
            lambda m: f"{m['outage']['breakers_opened']}/{m['processes']} ({m['outage']['opened_by_the_fleet']})"),
        row("  probes per open interval, most", lambda m: _fmt(m["outage"]["probes_per_open_interval_max"])),
        row("  probes in all", lambda m: _fmt(m["outage"]["probes"])),
        "after the heal",
        row("  traffic back, median over processes", lambda m: _fmt(m["heal"]["return_median"], ".2f", " s")),
        row("  traffic back, last process", lambda m: _fmt(m["heal"]["return_max"], ".2f", " s")
            + ("+" if m["heal"]["not_back"] else "")),
        "cold start (DNS record emptied, then one more process)",
        row("  its calls ok / failed", lambda m: f"{m['cold_start']['ok']} / {m['cold_start']['failed']}"),
        row("Redis store operations (EVALSHA), whole scenario",
            lambda m: _fmt(m["redis"]["evalsha"]) if m["redis"] else "-"),
        "",
    ]
    verdict = _verdict(result)
    if verdict:
        lines.extend([verdict, ""])
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines) + "\n"


def _verdict(result: FleetDrillResult) -> str:
    s, a = result.modes.get("shared"), result.modes.get("alone")
    if s is None or a is None:
        return ""
    so, ao = s["outage"], a["outage"]
    parts = []
    if so["requests"] and ao["requests"]:
        parts.append(f"the failing endpoint saw {ao['requests'] / so['requests']:.1f}x fewer requests "
                     f"({so['requests']} vs {ao['requests']})")
    most = so["probes_per_open_interval_max"]
    parts.append(f"at most {most} probe{'' if most == 1 else 's'} per open interval "
                 f"(alone: {ao['probes_per_open_interval_max']})")
    sh, ah = s["heal"]["return_median"], a["heal"]["return_median"]
    if sh is not None and ah is not None:
        parts.append(f"traffic was back {sh:.2f} s after the heal (median; alone: {ah:.2f} s)")
    sc, ac = s["cold_start"], a["cold_start"]
    parts.append(f"the process started while the DNS record was empty served {sc['ok']} of {sc['calls']} calls "
                 f"(alone: {ac['ok']} of {ac['calls']})")
    return f"With shared state ({s['processes']} processes): " + "; ".join(parts) + "."


def write_fleet_json(result: FleetDrillResult, path: str) -> None:
    """Atomic write (temporary file + rename), as the drill's own JSON."""
    write_json_atomically(result.to_dict(), path, prefix=".drill-fleet-")
