"""The outage drill: one workload, three clients, four failures, counted by the servers.

Why this shape: a new user should see in under a minute what a stock boto3 client does when AWS
breaks the way it did on 2025-10-20, next to the same code through resilient_aws. So the drill runs
the *same* offered load (N threads per client, each at a fixed rate of GetItem/PutItem calls)
through botocore legacy mode (the default for years), botocore standard mode (the default of recent
botocore) and resilient_aws at the same time, against the same loopback servers, through these phases:

1. healthy;
2. the us-east-1 DNS record emptied (NOERROR, no records: the 2025-10-20 answer);
3. DNS restored, us-east-1 answering 503 to everything;
4. us-east-1 unreachable (connections refused);
5. recovery.

How it is counted: a call belongs to the phase it *started* in. Every HTTP request carries a tag
header naming its client and that phase (added after signing, by a ``before-send`` handler), and
the moto servers count requests per tag, so "attempts per call" is what the servers received, not
what the clients report; a retry that lands in a later phase still counts for the call that made
it. DNS queries are counted by the DNS server per client (each client has its own names), read at
phase boundaries. Latency is measured around the call by the workload itself.

Worker threads are daemon threads: botocore legacy mode sleeps up to 25.6 s inside one call and
cannot be interrupted, so calls still blocked when the drill ends are reported as unfinished (and
counted as failed, with their time so far as latency) instead of holding the drill open.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

__all__ = ["CLIENTS", "DrillConfig", "DrillResult", "Phase", "phases_for", "run_drill"]

PRIMARY = "us-east-1"
SECONDARY = "us-west-2"
TABLE = "drill"
KEYS = 200


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    seconds: float


def phases_for(quick: bool) -> list[Phase]:
    """The five phases; ``quick`` shortens them so that the whole drill fits in 20 s."""
    s = (2.0, 3.5, 3.0, 3.0, 3.0) if quick else (6.0, 10.0, 10.0, 10.0, 10.0)
    return [
        Phase("healthy", "all healthy", s[0]),
        Phase("dns-empty", f"DNS record of {PRIMARY} emptied (NOERROR, no records)", s[1]),
        Phase("503", f"DNS back; {PRIMARY} answers 503 to everything", s[2]),
        Phase("unreachable", f"{PRIMARY} unreachable (connection refused)", s[3]),
        Phase("recovery", "everything healthy again", s[4]),
    ]


#: (label, DNS label, title) of the three clients, in table order.
CLIENTS: tuple[tuple[str, str, str], ...] = (
    ("legacy", "legacy", "botocore legacy"),
    ("standard", "standard", "botocore standard"),
    ("resilient", "resilient", "resilient_aws"),
)


@dataclass
class DrillConfig:
    """Everything a drill run depends on (also written to the JSON report)."""

    quick: bool = False
    threads: int = 4           # worker threads per client
    rate: float = 5.0          # calls per second per thread (offered load)
    write_ratio: float = 0.2   # share of PutItem calls
    port: int = 0              # HTTP port of both regions (0: a free one)
    dns: str = "embedded"      # "embedded" or "bind"
    seed: int = 1
    live: bool | None = None   # updating status lines; None: when the output is a terminal
    grace: float | None = None  # seconds to wait for calls in flight at the end

    def __post_init__(self) -> None:
        if self.threads < 1 or self.threads > 64:
            raise ValueError(f"threads must be within 1..64, got {self.threads}")
        if not 0 < self.rate <= 100:
            raise ValueError(f"rate must be within (0, 100] calls/s per thread, got {self.rate}")
        if not 0 <= self.write_ratio <= 1:
            raise ValueError(f"write_ratio must be within [0, 1], got {self.write_ratio}")
        if self.dns not in ("embedded", "bind"):
            raise ValueError(f"dns must be 'embedded' or 'bind', got {self.dns!r}")


@dataclass
class _Call:
    phase: int
    start: float      # seconds since the drill started
    latency: float
    ok: bool
    op: str
    error: str | None


@dataclass
class DrillResult:
    """Numbers of one run. ``phases[i]["clients"][label]`` holds the per-phase metrics."""

    config: dict[str, Any]
    phases: list[dict[str, Any]]
    totals: dict[str, dict[str, Any]]
    servers: dict[str, Any]
    timeline: dict[str, Any]
    resilient_stats: dict[str, Any]
    duration: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
_tag_state = threading.local()


def _tag_request(request: Any, **kwargs: Any) -> None:
    """``before-send`` handler: label the request with the client and phase of the call in progress
    on this thread. Runs after signing, so the signature is untouched."""
    tag = getattr(_tag_state, "tag", None)
    if tag is not None:
        from ..testing.aws import TAG_HEADER

        request.headers[TAG_HEADER] = tag


def _tag(label: str, phase: int) -> str:
    return f"{label}|{phase}"


def _make_clients(drill: Any, cfg: DrillConfig) -> dict[str, Any]:
    import botocore.session
    from botocore.config import Config

    from ..policy import BreakerPolicy, FailoverPolicy, Policy
    from ..session import Session
    from ..testing.aws import TEST_CREDENTIALS
    from .baseline_dns import attach_uncached_dns

    clients: dict[str, Any] = {}
    dns_host, dns_port = drill.dns.host, drill.dns.port
    for label, dns_label, _ in CLIENTS:
        urls = drill.endpoint_urls("dynamodb", label=dns_label)
        if label in ("legacy", "standard"):
            session = botocore.session.get_session()
            client = session.create_client("dynamodb", region_name=PRIMARY, endpoint_url=urls[PRIMARY],
                                           config=Config(retries={"mode": label}, max_pool_connections=cfg.threads),
                                           **TEST_CREDENTIALS)
            attach_uncached_dns(client, [dns_host], dns_port, timeout=1.0)
            client.meta.events.register("before-send.dynamodb", _tag_request)
            clients[label] = client
        else:
            bc = botocore.session.get_session()
            bc.register("before-send.dynamodb", _tag_request)  # inherited by the per-region clients
            open_time = 1.0 if cfg.quick else 2.0
            policy = drill.policy(Policy(
                breaker=BreakerPolicy(open_time=open_time, max_open_time=2 * open_time),
                failover=FailoverPolicy(operations=frozenset({"PutItem"})),
            ))
            session = Session(region_name=PRIMARY, failover_regions=[SECONDARY], policy=policy,
                              botocore_session=bc, **TEST_CREDENTIALS)
            clients[label] = session.client("dynamodb", endpoint_urls=urls,
                                            config=Config(max_pool_connections=cfg.threads))
    return clients


class _Workload:
    """N threads per client, each offering ``rate`` calls/s on a fixed schedule (missed slots are
    skipped, not made up: a blocked worker lowers the load it offers, as a blocked thread would)."""

    def __init__(self, clients: dict[str, Any], cfg: DrillConfig, t0: float, phase_of: Callable[[], int]) -> None:
        self.clients = clients
        self.cfg = cfg
        self.t0 = t0
        self.phase_of = phase_of
        self.stop = threading.Event()
        self.calls: dict[str, list[_Call]] = {label: [] for label in clients}
        self.inflight: dict[tuple[str, int], tuple[int, float]] = {}  # (label, worker) -> (phase, start)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for label in self.clients:
            for w in range(self.cfg.threads):
                t = threading.Thread(target=self._run, args=(label, w), name=f"drill-{label}-{w}", daemon=True)
                t.start()
                self.threads.append(t)

    def _run(self, label: str, worker: int) -> None:
        rng = random.Random(f"{self.cfg.seed}-{label}-{worker}")
        client = self.clients[label]
        interval = 1.0 / self.cfg.rate
        next_at = time.monotonic() + rng.random() * interval
        n = 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now < next_at:
                self.stop.wait(next_at - now)
                continue
            next_at += interval
            if next_at < now:  # blocked past some slots: skip them
                next_at = now + interval
            phase = self.phase_of()
            n += 1
            write = rng.random() < self.cfg.write_ratio
            op = "PutItem" if write else "GetItem"
            start = time.monotonic()
            self.inflight[(label, worker)] = (phase, start - self.t0)
            _tag_state.tag = _tag(label, phase)
            error = None
            try:
                if write:
                    client.put_item(TableName=TABLE, Item={"pk": {"S": f"w-{label}-{worker}-{n}"},
                                                           "v": {"S": "x"}})
                else:
                    client.get_item(TableName=TABLE, Key={"pk": {"S": f"k{rng.randrange(KEYS):03d}"}})
            except Exception as e:
                error = type(e).__name__
            finally:
                _tag_state.tag = None
                self.inflight.pop((label, worker), None)
            end = time.monotonic()
            self.calls[label].append(_Call(phase, start - self.t0, end - start, error is None, op, error))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[index]


class _Status(logging.Handler):
    """Live lines, one per client (rewritten in place on a terminal; printed per phase otherwise).

    It is also the ``resilient_aws`` logger's handler while the drill runs, so the library's own
    messages (breaker opened, stale DNS served) appear above the status lines, in order, instead of
    tearing them apart on stderr.
    """

    def __init__(self, out: TextIO, live: bool) -> None:
        super().__init__(logging.INFO)
        self.out = out
        self.live = live
        self.drawn = 0
        self.events: list[str] = []
        self._t0 = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(f"  {time.monotonic() - self._t0:5.1f}s  {record.getMessage()}")

    def _flush_events(self) -> None:
        events, self.events = self.events, []
        for line in events:
            self.out.write("\x1b[2K" + line + "\n" if self.live else line + "\n")

    def draw(self, lines: list[str]) -> None:
        if not self.live:
            return
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")
        self._flush_events()
        for line in lines:
            self.out.write("\x1b[2K" + line + "\n")
        self.drawn = len(lines)
        self.out.flush()

    def done(self, lines: list[str]) -> None:
        """Freeze the phase's last status (or print it once when not live)."""
        if self.live:
            self.draw(lines)
            self.drawn = 0
        else:
            self._flush_events()
            for line in lines:
                self.out.write(line + "\n")
            self.out.flush()


def run_drill(cfg: DrillConfig, out: TextIO | None = None) -> DrillResult:
    """Run the drill and return its numbers (the caller prints the table, JSON, plot).

    Raises ``PortInUseError`` (port named) when ``cfg.port`` is taken, and ``BindUnavailable`` when
    ``--dns bind`` cannot run. Servers are stopped on every exit path, Ctrl-C included.
    """
    from ..testing.drill_env import OutageDrill

    out = out or sys.stdout
    live = cfg.live if cfg.live is not None else bool(getattr(out, "isatty", lambda: False)())
    phases = phases_for(cfg.quick)
    grace = cfg.grace if cfg.grace is not None else (1.5 if cfg.quick else 3.0)
    started = time.monotonic()

    dns_backend = None
    if cfg.dns == "bind":
        from .bind import BindDnsServer

        dns_backend = BindDnsServer()
    drill = OutageDrill((PRIMARY, SECONDARY), port=cfg.port, dns=dns_backend)
    workload: _Workload | None = None
    status = _Status(out, live)
    library_log = logging.getLogger("resilient_aws")
    saved = (library_log.propagate, library_log.level)
    library_log.addHandler(status)
    library_log.propagate = False
    if library_log.level == logging.NOTSET or library_log.level > logging.INFO:
        library_log.setLevel(logging.INFO)
    try:
        drill.start()
        drill.create_table(TABLE, ({"pk": {"S": f"k{i:03d}"}, "v": {"S": "global"}} for i in range(KEYS)))
        clients = _make_clients(drill, cfg)
        _warm_up(clients)
        out.write(_banner(drill, cfg, phases))
        out.flush()

        drill.reset_counts()
        current = [0]
        t0 = time.monotonic()
        dns_marks: list[dict[str, int]] = []
        workload = _Workload(clients, cfg, t0, lambda: current[0])
        status._t0 = t0
        boundaries: list[float] = []
        for i, phase in enumerate(phases):
            # the phase starts before its fault is applied: a call is never blamed on the phase before
            boundaries.append(time.monotonic() - t0)
            dns_marks.append({label: drill.dns_queries(label=dns_label) for label, dns_label, _ in CLIENTS})
            current[0] = i
            _apply(drill, phase.name)
            out.write(f"-- {i + 1}/{len(phases)} {phase.name}: {phase.title} ({phase.seconds:g} s)\n")
            out.flush()
            if i == 0:
                workload.start()
            phase_end = t0 + sum(p.seconds for p in phases[: i + 1])
            for _ in range(int(phase.seconds / 0.25) + 2):  # bounded: redraw 4x/s until the phase ends
                now = time.monotonic()
                if now >= phase_end:
                    break
                status.draw(_status_lines(drill, workload, i, phases))
                time.sleep(min(0.25, phase_end - now))
            status.done(_status_lines(drill, workload, i, phases))
        end = time.monotonic() - t0
        boundaries.append(end)
        workload.stop.set()
        deadline = time.monotonic() + grace
        for t in workload.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        dns_marks.append({label: drill.dns_queries(label=dns_label) for label, dns_label, _ in CLIENTS})
        return _collect(drill, cfg, phases, workload, boundaries, dns_marks, clients, time.monotonic() - started)
    finally:
        if workload is not None:
            workload.stop.set()
        drill.stop()
        library_log.removeHandler(status)
        library_log.propagate, _ = saved
        library_log.setLevel(saved[1])


def _warm_up(clients: dict[str, Any]) -> None:
    """One read per client before the clock starts: connection set-up and the first DNS answer are
    not what the drill measures (and resilient_aws needs one good answer to keep)."""
    for client in clients.values():
        with contextlib.suppress(Exception):
            client.get_item(TableName=TABLE, Key={"pk": {"S": "k000"}})


def _apply(drill: Any, phase: str) -> None:
    if phase == "healthy":
        drill.restore()
    elif phase == "dns-empty":
        drill.dns_empty(PRIMARY)
    elif phase == "503":
        drill.dns_restore(PRIMARY)
        drill.fail(PRIMARY, 503)
    elif phase == "unreachable":
        drill.unreachable(PRIMARY)
    elif phase == "recovery":
        drill.restore()
    else:  # pragma: no cover - phases_for() defines the names
        raise ValueError(phase)


def _server_tags(drill: Any) -> dict[str, dict[str, int]]:
    return {region: drill.counts(region).by_tag for region in drill.regions}


def _status_lines(drill: Any, workload: _Workload, phase: int, phases: list[Phase]) -> list[str]:
    tags = _server_tags(drill)
    lines = []
    for label, _, title in CLIENTS:
        calls = [c for c in list(workload.calls[label]) if c.phase == phase]
        ok = sum(c.ok for c in calls)
        blocked = sum(1 for (lab, _), (p, _) in list(workload.inflight.items()) if lab == label)
        attempts = sum(t.get(_tag(label, phase), 0) for t in tags.values())
        pct = f"{100.0 * ok / len(calls):5.1f}%" if calls else "    - "
        per_call = f"{attempts / len(calls):5.2f}" if calls else "    -"
        lines.append(f"  {title:<18} {phases[phase].name:<12} calls {len(calls):>5}  ok {pct}  "
                     f"attempts/call {per_call} (server)  blocked in a call {blocked:>2}")
    return lines


def _collect(drill: Any, cfg: DrillConfig, phases: list[Phase], workload: _Workload, boundaries: list[float],
             dns_marks: list[dict[str, int]], clients: dict[str, Any], duration: float) -> DrillResult:
    finished = {label: list(calls) for label, calls in workload.calls.items()}
    end = boundaries[-1] + cfg_grace_used(workload)
    unfinished: dict[str, list[_Call]] = {label: [] for label in finished}
    for (label, _), (phase, start) in list(workload.inflight.items()):
        unfinished[label].append(_Call(phase, start, max(0.0, end - start), False, "?", "Unfinished"))
    tags = _server_tags(drill)
    phase_rows = []
    for i, phase in enumerate(phases):
        rows: dict[str, Any] = {}
        for label, _, title in CLIENTS:
            calls = [c for c in finished[label] if c.phase == i]
            stuck = [c for c in unfinished[label] if c.phase == i]
            everything = calls + stuck
            ok = sum(c.ok for c in calls)
            east = tags[PRIMARY].get(_tag(label, i), 0)
            west = tags[SECONDARY].get(_tag(label, i), 0)
            dns_q = dns_marks[i + 1][label] - dns_marks[i][label]
            n = len(everything)
            offered = cfg.threads * cfg.rate * (boundaries[i + 1] - boundaries[i])
            errors: dict[str, int] = {}
            for c in everything:
                if c.error:
                    errors[c.error] = errors.get(c.error, 0) + 1
            lat = [c.latency for c in everything]
            rows[label] = {
                "client": title,
                "calls": n,
                "ok": ok,
                "failed": n - ok,
                "unfinished": len(stuck),
                "success_pct": round(100.0 * ok / n, 2) if n else None,
                "offered": round(offered, 1),
                "served_pct_of_offered": round(min(100.0, 100.0 * ok / offered), 2) if offered else None,
                "p50_ms": _ms(_percentile(lat, 50)),
                "p99_ms": _ms(_percentile(lat, 99)),
                "server_attempts": east + west,
                "attempts_per_call": round((east + west) / n, 3) if n else None,
                "dns_queries": dns_q,
                "dns_queries_per_call": round(dns_q / n, 3) if n else None,
                "requests_by_region": {PRIMARY: east, SECONDARY: west},
                "errors": errors,
            }
        phase_rows.append({"name": phase.name, "title": phase.title, "planned_seconds": phase.seconds,
                           "start": round(boundaries[i], 3), "end": round(boundaries[i + 1], 3), "clients": rows})
    totals: dict[str, dict[str, Any]] = {}
    for label, _, title in CLIENTS:
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
    servers = {region: drill.counts(region).to_dict() for region in drill.regions}
    timeline = _timeline(drill, finished, boundaries[-1])
    stats = clients["resilient"].stats() if hasattr(clients["resilient"], "stats") else {}
    notes = [
        f"botocore {_botocore_version()} defaults to {_default_retry_mode()} retry mode (AWS_RETRY_MODE "
        "changes it); legacy mode was the default for years and is still common",
        "'offered' is the calls the workers were scheduled to make (threads x rate x seconds): a worker "
        "blocked inside a call makes none, so 'served' = ok / offered",
        "a call belongs to the phase it started in; attempts are counted by the servers per call tag",
        "resilient_aws: default Policy except breaker open_time "
        f"{1.0 if cfg.quick else 2.0} s (so recovery fits the drill) and PutItem allowed to fail over",
        "botocore clients resolve through the drill's DNS server on every new connection, without a cache, "
        "as a stock process does",
        f"calls still blocked {cfg_grace_used(workload):.1f} s after the last phase are counted as failed "
        "('unfinished'), with their time so far as latency",
    ]
    return DrillResult(asdict(cfg), phase_rows, totals, servers, timeline, stats, round(duration, 3), notes)


def _botocore_version() -> str:
    import botocore

    return botocore.__version__


def _default_retry_mode() -> str:
    """What a client created without a retries config gets here (env and config files included)."""
    import botocore.session

    try:
        client = botocore.session.get_session().create_client(
            "dynamodb", region_name=PRIMARY, aws_access_key_id="x", aws_secret_access_key="x")
        return str(client.meta.config.retries.get("mode", "legacy"))
    except Exception:  # pragma: no cover - informational only
        return "unknown"


def cfg_grace_used(workload: _Workload) -> float:
    return workload.cfg.grace if workload.cfg.grace is not None else (1.5 if workload.cfg.quick else 3.0)


def _ms(value: float | None) -> float | None:
    return round(value * 1000.0, 1) if value is not None else None


def _timeline(drill: Any, calls: dict[str, list[_Call]], end: float) -> dict[str, Any]:
    """Per second and client: calls started, calls ok (client side) and HTTP attempts (server side)."""
    seconds = int(end) + 1
    out: dict[str, Any] = {"seconds": list(range(seconds)), "clients": {}}
    by_host: dict[str, dict[int, int]] = {}
    for region in drill.regions:
        for host, series in drill.endpoint(region).per_second_by_host().items():
            for s, n in series.items():
                by_host.setdefault(host, {})
                by_host[host][s] = by_host[host].get(s, 0) + n
    for label, dns_label, title in CLIENTS:
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


def _banner(drill: Any, cfg: DrillConfig, phases: list[Phase]) -> str:
    total = sum(p.seconds for p in phases)
    lines = [
        "resilient_aws outage drill: the same load through three DynamoDB clients while us-east-1 breaks",
        f"  servers: moto {PRIMARY} on 127.0.0.1:{drill.port}, {SECONDARY} on 127.0.0.2:{drill.port}; "
        f"DNS ({cfg.dns}) on {drill.dns.host}:{drill.dns.port} for *.{drill.zone}",
        f"  load: {cfg.threads} threads x {cfg.rate:g} calls/s per client "
        f"({100 * (1 - cfg.write_ratio):.0f}% GetItem, {100 * cfg.write_ratio:.0f}% PutItem); "
        f"phases: " + ", ".join(f"{p.name} {p.seconds:g}s" for p in phases) + f" = {total:g} s",
        "",
    ]
    return "\n".join(lines) + "\n"
