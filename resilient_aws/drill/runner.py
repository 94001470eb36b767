"""The outage drill's conductor: start the loopback world, run the phases under load, hand back the numbers.

Why this shape: a new user should see in under a minute what a stock botocore client does when AWS
breaks the way it did on 2025-10-20, next to the same code through resilient_aws. So the drill runs
the *same* offered load through three clients at once (:mod:`~resilient_aws.drill.clients`: botocore
in legacy retry mode, boto3's default on 2025-10-20; botocore in standard retry mode, the default of
recent botocore; resilient_aws), against the same loopback servers, through the phases of
:mod:`~resilient_aws.drill.phases`, and reports what the *servers* saw.

Where aiobotocore is installed, two asyncio clients run the same load too (plain aiobotocore and
``resilient_aws.aio``, :mod:`~resilient_aws.drill.aio`), each in a process of its own whose one event
loop's lag a heartbeat task measures.

This module only orders the steps and guarantees the clean-up (every server stopped on every exit
path, Ctrl-C included); the parts live next to it: the load generator
(:mod:`~resilient_aws.drill.workload`), the live status lines (:mod:`~resilient_aws.drill.status`),
the numbers (:mod:`~resilient_aws.drill.metrics`), the table, JSON and plot
(:mod:`~resilient_aws.drill.report`). The names other code imports from here
(``CLIENTS``, ``DrillConfig``, ``DrillResult``, ``Phase``, ``phases_for``, ``run_drill``) still are.

How it is counted: a call belongs to the phase it *started* in; every HTTP request carries a tag
naming its client and that phase, and the servers count requests per tag, so "attempts per call" is
what the servers received, not what the clients report. DNS queries are counted by the DNS server per
client (each client has its own names), read at phase boundaries. Latency is measured around the call.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from .clients import (
    AIO_CLIENTS,
    AIO_INSTALL,
    CLIENTS,
    aio_available,
    botocore_info,
    clients_for,
    make_clients,
    modes_line,
    warm_up,
)
from .config import KEYS, PRIMARY, SECONDARY, TABLE, DrillConfig
from .metrics import DrillResult, collect
from .phases import Phase, apply_phase, phases_for
from .status import Status, status_lines
from .workload import Workload

__all__ = ["CLIENTS", "PRIMARY", "SECONDARY", "DrillConfig", "DrillResult", "Phase", "phases_for", "run_drill"]


def run_drill(cfg: DrillConfig, out: TextIO | None = None) -> DrillResult:
    """Run the drill and return its numbers (the caller prints the table, JSON, plot).

    Raises ``PortInUseError`` (port named) when ``cfg.port`` is taken, and ``BindUnavailable`` when
    ``--dns bind`` cannot run. Servers are stopped on every exit path, Ctrl-C included.
    """
    from ..testing.drill_env import OutageDrill

    out = out or sys.stdout
    live = cfg.live if cfg.live is not None else bool(getattr(out, "isatty", lambda: False)())
    specs = clients_for(cfg)
    aio_labels = tuple(spec[0] for spec in specs if spec in AIO_CLIENTS)
    phases = phases_for(cfg.quick)
    started = time.monotonic()
    botocore = botocore_info()

    dns_backend = None
    if cfg.dns == "bind":
        from .bind import BindDnsServer

        dns_backend = BindDnsServer()
    drill = OutageDrill((PRIMARY, SECONDARY), port=cfg.port, dns=dns_backend)
    workload: Workload | None = None
    hosts: dict[str, Any] = {}
    status = Status(out, live)
    library_log = logging.getLogger("resilient_aws")
    saved = (library_log.propagate, library_log.level)
    library_log.addHandler(status)
    library_log.propagate = False
    if library_log.level == logging.NOTSET or library_log.level > logging.INFO:
        library_log.setLevel(logging.INFO)
    try:
        drill.start()
        drill.create_table(TABLE, ({"pk": {"S": f"k{i:03d}"}, "v": {"S": "global"}} for i in range(KEYS)))
        clients = make_clients(drill, cfg)
        warm_up(clients)
        if aio_labels:
            from .aio import make_aio_clients

            hosts = make_aio_clients(drill, cfg, aio_labels)
        out.write(_banner(drill, cfg, phases, botocore, specs))
        out.flush()

        drill.reset_counts()
        current = [0]
        t0 = time.monotonic()
        dns_marks: list[dict[str, int]] = []
        workload = Workload({**clients, **hosts}, cfg, t0, lambda: current[0])
        status.t0 = t0
        boundaries: list[float] = []
        for i, phase in enumerate(phases):
            # the phase starts before its fault is applied: a call is never blamed on the phase before
            boundaries.append(time.monotonic() - t0)
            dns_marks.append(_dns_counts(drill, specs))
            current[0] = i
            workload.set_phase(i)
            apply_phase(drill, phase.name)
            out.write(f"-- {i + 1}/{len(phases)} {phase.name}: {phase.title} ({phase.seconds:g} s)\n")
            out.flush()
            if i == 0:
                workload.start()
            phase_end = t0 + sum(p.seconds for p in phases[: i + 1])
            for _ in range(int(phase.seconds / 0.25) + 2):  # bounded: redraw 4x/s until the phase ends
                now = time.monotonic()
                if now >= phase_end:
                    break
                status.draw(status_lines(drill, workload, i, phases))
                time.sleep(min(0.25, phase_end - now))
            status.done(status_lines(drill, workload, i, phases))
        boundaries.append(time.monotonic() - t0)
        workload.join(cfg.grace_seconds)
        dns_marks.append(_dns_counts(drill, specs))
        resilient = clients.get("resilient")
        stats = resilient.stats() if resilient is not None else {}
        return collect(drill, cfg, phases, workload, boundaries, dns_marks, stats, botocore,
                       time.monotonic() - started, _aio_section(cfg, hosts))
    finally:
        if workload is not None:
            workload.stop.set()
        for host in hosts.values():  # before the servers stop: the clients close their connections
            host.close()
        drill.stop()
        library_log.removeHandler(status)
        library_log.propagate, _ = saved
        library_log.setLevel(saved[1])


def _dns_counts(drill: Any, specs: tuple[tuple[str, str, str], ...]) -> dict[str, int]:
    return {label: drill.dns_queries(label=dns_label) for label, dns_label, _ in specs}


def _aio_section(cfg: DrillConfig, hosts: dict[str, Any]) -> dict[str, Any]:
    """``DrillResult.aio``: versions, aiobotocore's retries, each loop's lag, resilient_aws.aio's stats;
    or why the asyncio rows did not run."""
    if not hosts:
        if cfg.aio is None and not aio_available():
            return {"not_run": f"the asyncio rows need aiobotocore: {AIO_INSTALL}"}
        return {}
    first = next(iter(hosts.values()))
    section: dict[str, Any] = {
        "versions": {k: first.info.get(k) for k in ("aiobotocore", "botocore", "aiohttp")},
        "tasks": cfg.threads,
        "process": "each asyncio client in a process of its own (one event loop each)",
    }
    if "aiobotocore" in hosts:
        info = hosts["aiobotocore"].info
        section["aiobotocore_retries"] = {"mode": info.get("retry_mode"),
                                          "total_max_attempts": info.get("total_max_attempts")}
    section["loop_lag"] = {label: host.loop_lag for label, host in hosts.items()}
    if any(host.slow_callbacks for host in hosts.values()):
        section["slow_callbacks"] = {label: host.slow_callbacks for label, host in hosts.items()}
    if "aio" in hosts:
        section["resilient_stats"] = hosts["aio"].stats
    return section


_COUNT = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def _banner(drill: Any, cfg: DrillConfig, phases: list[Phase], botocore: dict[str, str],
            specs: tuple[tuple[str, str, str], ...]) -> str:
    total = sum(p.seconds for p in phases)
    asyncio_titles = [title for label, _, title in specs if label not in {c[0] for c in CLIENTS}]
    lines = [
        f"resilient_aws outage drill: the same load through {_COUNT.get(len(specs), str(len(specs)))} DynamoDB "
        f"client{'s' if len(specs) > 1 else ''} while us-east-1 breaks",
        f"  {modes_line(botocore)}",
        f"  servers: moto {PRIMARY} on 127.0.0.1:{drill.port}, {SECONDARY} on 127.0.0.2:{drill.port}; "
        f"DNS ({cfg.dns}) on {drill.dns.host}:{drill.dns.port} for *.{drill.zone}",
        f"  load: {cfg.threads} threads x {cfg.rate:g} calls/s per client "
        f"({100 * (1 - cfg.write_ratio):.0f}% GetItem, {100 * cfg.write_ratio:.0f}% PutItem); "
        f"phases: " + ", ".join(f"{p.name} {p.seconds:g}s" for p in phases) + f" = {total:g} s",
    ]
    if asyncio_titles:
        lines.append(f"  asyncio: {', '.join(asyncio_titles)}, each in a process of its own (one event loop), "
                     f"{cfg.threads} tasks x {cfg.rate:g} calls/s; a heartbeat task every 1 ms measures each "
                     "loop's lag")
    elif cfg.aio is None and not aio_available():
        lines.append(f"  asyncio rows (aiobotocore, resilient_aws.aio) not run: they need the aio extra, {AIO_INSTALL}")
    lines.append("")
    return "\n".join(lines) + "\n"
