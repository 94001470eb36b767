"""``resilient-aws bench [overhead|storm|dns|all|fleet-sim|aio]``: the subcommand's options, and what runs them.

Why here and not in ``resilient_aws.__main__``: the options belong with the benchmarks they set. This
module imports only the standard library at the top, so building the command line's parser stays light;
a benchmark's own module (and botocore, and for ``storm`` moto) is imported only when it runs.

Output: stdout carries the tables only (Markdown; ``all`` puts each under a ``## `` heading, printed as
each benchmark ends); stderr carries a progress line per round. ``--markdown PATH`` writes the same
tables into a file with the date, the machine and the software.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .extras import AIO_INSTALL, DRILL_INSTALL, STORM_MODULES, missing

BENCHMARKS = ("overhead", "storm", "dns")
#: Run only when named (not part of ``all``): a simulation of a fleet, not a measurement of this machine.
SIMULATIONS = ("fleet-sim",)
#: Run only when named: the asyncio client, in an environment with aiobotocore (extra ``aio``).
ASYNC = ("aio",)
_S = TypeVar("_S")


def _bounded(kind: Callable[[str], Any], low: float, high: float, *, open_low: bool = False) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` within [low, high] (or (low, high] with ``open_low``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value > high or value < low or (open_low and value == low):
            interval = f"({low:g}, {high:g}]" if open_low else f"{low:g}..{high:g}"
            raise argparse.ArgumentTypeError(f"must be within {interval}, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` subcommand's arguments; an option left out keeps the benchmark's default (or its
    ``--quick`` value)."""
    parser.add_argument("which", nargs="?", choices=(*BENCHMARKS, "all", *SIMULATIONS, *ASYNC), default="all",
                        help="which benchmark (default: all, about 4 minutes; storm needs the drill extra); "
                             "fleet-sim, run only when named, simulates 10 to 10,000 processes sharing state; "
                             "aio, run only when named, the asyncio client (needs the aio extra)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables, with date and machine, to PATH")
    parser.add_argument("--quick", action="store_true",
                        help="short runs: a smoke test in seconds (storm: about a minute), not for the record")
    timed = parser.add_argument_group("overhead and dns")
    timed.add_argument("--rounds", type=_bounded(int, 1, 1000), metavar="N",
                       help="timed rounds of each client or lookup (overhead: 21, dns: 15; quick: 5 and 7)")
    timed.add_argument("--calls", type=_bounded(int, 1, 1_000_000), metavar="N",
                       help="calls per round: overhead's wrapper, dns's cache hits (default 20000; quick 2000)")
    timed.add_argument("--http-calls", type=_bounded(int, 1, 100_000), metavar="N",
                       help="overhead: calls per round end to end (default 1000; quick 100)")
    timed.add_argument("--pooled-calls", type=_bounded(int, 1, 100_000), metavar="N",
                       help="dns: calls over one keep-alive connection (default 200)")
    storm = parser.add_argument_group("storm (needs the drill extra: moto's server plays the failing endpoint)")
    storm.add_argument("--threads", type=_bounded(int, 1, 256), metavar="N",
                       help="threads sharing one client (default 32; quick 16)")
    storm.add_argument("--rate", type=_bounded(float, 0, 1000, open_low=True), metavar="R",
                       help="calls/s offered per thread (default 10)")
    storm.add_argument("--outage", type=_bounded(float, 1, 300), metavar="S",
                       help="seconds the endpoint fails (default 15, long enough for legacy mode's 9th attempt; "
                            "quick 4)")
    storm.add_argument("--max-recovery", type=_bounded(float, 1, 300), metavar="S",
                       help="longest wait after the heal (default 40: legacy mode sleeps up to 12.8 s per retry)")
    storm.add_argument("--only", choices=("503", "refused"), help="one failure kind only")
    storm.add_argument("--clients", nargs="+", metavar="CLIENT",
                       choices=("botocore legacy", "botocore standard", "botocore adaptive", "resilient_aws",
                                "resilient_aws, breaker off"),
                       help="clients to run (default: all five)")
    storm.add_argument("--json", metavar="PATH", help="write storm's rows as JSON")
    fleet = parser.add_argument_group("fleet-sim (simulated processes sharing one store)")
    fleet.add_argument("--sizes", type=_bounded(int, 1, 100_000), nargs="+", metavar="N",
                       help="fleet sizes in processes (default 10 100 1000 10000; quick 10 200)")


def settings(args: argparse.Namespace, default: _S, quick: _S, **options: str) -> _S:
    """``default`` (or ``quick`` with ``--quick``), with each field in ``options`` taken from the option of
    that name in ``args`` when it was given: ``settings(args, Settings(), QUICK, rounds="rounds")``."""
    chosen = quick if args.quick else default
    given = {name: getattr(args, option) for name, option in options.items() if getattr(args, option) is not None}
    return dataclasses.replace(chosen, **given)  # type: ignore[type-var]


def _overhead(args: argparse.Namespace) -> Any:
    from . import overhead
    from .report import Section
    from .timing import Progress

    chosen = settings(args, overhead.Settings(), overhead.QUICK, rounds="rounds", calls="calls",
                      http_calls="http_calls")
    return Section("overhead", overhead.run(chosen, Progress("overhead")))


def _storm(args: argparse.Namespace) -> Any:
    from .report import Section

    absent = missing(STORM_MODULES)
    if absent:
        return Section("storm", f"Not run: the storm benchmark needs {', '.join(absent)}, which are not installed "
                                f"(moto's DynamoDB server plays the failing endpoint on loopback); `{DRILL_INSTALL}` "
                                "adds them.", status=2, skipped=True)
    from . import storm
    from .timing import Progress

    chosen = settings(args, storm.Settings(), storm.QUICK, threads="threads", rate="rate", outage="outage",
                      max_recovery="max_recovery", clients="clients")
    if args.only:
        chosen = dataclasses.replace(chosen, failures=(args.only,))
    try:
        rows = storm.run(chosen, Progress("storm"))
    except ImportError as e:  # a part of the extra missing that the check above does not name
        return Section("storm", f"Not run: {e}; `{DRILL_INSTALL}` adds what the storm benchmark needs.", status=2,
                       skipped=True)
    if args.json:
        storm.write_json(rows, args.json)
    return Section("storm", storm.markdown(rows, chosen))


def _dns(args: argparse.Namespace) -> Any:
    from . import dns
    from .report import Section
    from .timing import Progress

    chosen = settings(args, dns.Settings(), dns.QUICK, rounds="rounds", calls="calls", pooled_calls="pooled_calls")
    outcome = dns.run(chosen, Progress("dns"))
    return Section("dns", outcome.text, status=0 if outcome.ok else 1)


def _fleet_sim(args: argparse.Namespace) -> Any:
    from . import fleet_sim
    from .report import Section
    from .timing import Progress

    chosen = settings(args, fleet_sim.Settings(), fleet_sim.QUICK, sizes="sizes")
    return Section("fleet-sim", fleet_sim.report(chosen, Progress("fleet")))


def _aio(args: argparse.Namespace) -> Any:
    from .report import Section

    absent = missing((("aiobotocore", "aiobotocore"),))
    if absent:
        return Section("aio", f"Not run: the asyncio benchmark needs {absent[0]}, which is not installed; "
                              f"`{AIO_INSTALL}` adds it (make test builds .venv-aio with it).", status=2, skipped=True)
    from . import aio
    from .timing import Progress

    chosen = settings(args, aio.Settings(), aio.QUICK, rounds="rounds", calls="calls", http_calls="http_calls")
    return Section("aio", aio.run(chosen, Progress("aio")))


RUNNERS: dict[str, Callable[[argparse.Namespace], Any]] = {"overhead": _overhead, "storm": _storm, "dns": _dns,
                                                           "fleet-sim": _fleet_sim, "aio": _aio}


def run(args: argparse.Namespace) -> int:
    """Run what ``args.which`` names, print the tables as each ends; the exit status.

    A benchmark that cannot run for a missing extra is a failure (2) when it was asked for alone, and a
    line in the output under ``all``, whose other benchmarks still run.
    """
    from . import report

    names = BENCHMARKS if args.which == "all" else (args.which,)
    several = len(names) > 1
    sections = []
    status = 0
    for name in names:
        section = RUNNERS[name](args)
        if section.skipped and not several:
            print(f"resilient-aws bench: {section.body}", file=sys.stderr)
            return section.status
        sections.append(section)
        if not section.skipped:
            status = max(status, section.status)
        print(report.for_stdout(section, several), flush=True)
    if args.markdown:
        command = f"resilient-aws bench {args.which}" + (" --quick" if args.quick else "")
        report.write(args.markdown, report.document(sections, command))
        print(f"tables written to {args.markdown}", file=sys.stderr)
    return status
