"""Command line: ``python -m resilient_aws drill|bench`` (also the ``resilient-aws`` console script).

    python -m resilient_aws drill              # about 50 s: the outage drill
    python -m resilient_aws drill --quick      # under 20 s
    python -m resilient_aws drill --json drill.json --plot drill.png --dns bind
    python -m resilient_aws drill --fleet 8    # about 45 s: 8 processes, with and without Redis
    python -m resilient_aws bench overhead     # about 20 s: what the wrapper costs, on your botocore
    python -m resilient_aws bench all --markdown results.md   # overhead, storm, dns: about 4 minutes

The drill needs the ``drill`` extra (moto's HTTP server): ``pip install 'resilient-aws[drill]'``. This
module imports none of it, so ``--help`` and the dependency check work on a bare install.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

#: What the drill imports beyond the core dependencies, and the requirement that brings each one; all of
#: them come with the ``drill`` extra.
_DRILL_MODULES = (
    ("moto", "moto[server,dynamodb]"),
    ("flask", "moto[server,dynamodb]"),  # moto's HTTP server runs on Flask
    ("werkzeug", "werkzeug"),
)
DRILL_INSTALL = "pip install 'resilient-aws[drill]'"
_R = TypeVar("_R")


def _int_within(low: int, high: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high`` (the error says ``why`` when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be within {low}..{high}{f' ({why})' if why else ''}, "
                                             f"got {value}")
        return value
    return parse


_positive_int = _int_within(1, 64)
_fleet_size = _int_within(2, 32, "a fleet is at least two processes")


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be within (0, 100], got {value:g}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be within 0..65535, got {value}")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resilient-aws", description="resilient_aws command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    drill = sub.add_parser(
        "drill", help="outage drill on loopback: botocore vs resilient_aws while us-east-1 breaks",
        description="Run the same DynamoDB load through botocore in legacy retry mode (boto3's default on "
                    "2025-10-20), botocore in standard retry mode (the default of recent botocore; the drill "
                    "prints your version and its default) and resilient_aws while us-east-1's DNS record is "
                    "emptied, then it answers 503, then it is unreachable. Everything runs on loopback; no AWS "
                    f"account is used. Needs the drill extra: {DRILL_INSTALL}")
    drill.add_argument("--quick", action="store_true", help="shorter phases: under 20 s in all (default: under 60 s)")
    drill.add_argument("--json", metavar="PATH", help="write the numbers to PATH")
    drill.add_argument("--plot", metavar="PATH",
                       help="draw a timeline to PATH (PNG; needs matplotlib, the [plot] extra)")
    drill.add_argument("--dns", choices=("embedded", "bind"), default="embedded",
                       help="DNS server for the test zone: the embedded one, or BIND 9's named (default: embedded)")
    drill.add_argument("--port", type=_port, default=0,
                       help="HTTP port for both regions' servers, on 127.0.0.1 and 127.0.0.2 (default: a free one)")
    drill.add_argument("--threads", type=_positive_int, default=4, help="worker threads per client (default: 4)")
    drill.add_argument("--rate", type=_rate, default=5.0, help="calls per second per thread (default: 5)")
    drill.add_argument("--write-ratio", type=_ratio, default=0.2, help="share of PutItem calls (default: 0.2)")
    drill.add_argument("--no-live", action="store_true", help="no updating status lines (one summary per phase)")
    drill.add_argument("--fleet", type=_fleet_size, metavar="N",
                       help="instead: N worker processes (2..32) against the same servers, with shared state "
                            "through Redis and alone, side by side (GetItem only; --threads and --rate per "
                            "process; about 45 s, 30 s with --quick). Needs redis-server on PATH (Debian: "
                            "apt-get install redis-server) and the redis extra")
    from .bench.cli import add_arguments as add_bench_arguments  # argparse only: no benchmark is imported

    bench = sub.add_parser(
        "bench", help="benchmarks on this machine and this botocore: hot-path overhead, retry storms, DNS cache",
        description="Measure what resilient_aws costs here, against the installed botocore. Tables on stdout "
                    "(Markdown), a progress line per round on stderr. The tenacity + pybreaker comparison needs "
                    "the bench extra (pip install 'resilient-aws[bench]'); the storm benchmark needs the drill "
                    f"extra ({DRILL_INSTALL}). Everything runs on loopback; no AWS account is used.")
    add_bench_arguments(bench)
    return parser


def _missing_drill_dependencies() -> list[str]:
    """The requirements of the ``drill`` extra whose modules are absent (a bare ``pip install resilient-aws``)."""
    import importlib.util

    missing: list[str] = []
    for module, requirement in _DRILL_MODULES:
        if importlib.util.find_spec(module) is None and requirement not in missing:
            missing.append(requirement)
    return missing


def _drill(args: argparse.Namespace) -> int:
    missing = _missing_drill_dependencies()
    if missing:
        print(f"resilient-aws drill: needs {', '.join(missing)}, which are not installed (moto's DynamoDB server "
              f"plays AWS on loopback); install the drill extra: {DRILL_INSTALL}", file=sys.stderr)
        return 2
    if args.fleet:
        return _fleet_drill(args)
    from .drill import DrillConfig, run_drill
    from .drill.bind import BindUnavailable
    from .drill.report import format_table, write_json, write_plot
    from .testing.endpoint import PortInUseError

    cfg = DrillConfig(quick=args.quick, threads=args.threads, rate=args.rate, write_ratio=args.write_ratio,
                      port=args.port, dns=args.dns, live=False if args.no_live else None)
    result = _run_drill(lambda: run_drill(cfg), (PortInUseError, BindUnavailable))
    if result is None:
        return 2
    _report(args, "drill", format_table(result), result.duration, lambda path: write_json(result, path))
    if args.plot:
        problem = write_plot(result, args.plot)
        print(problem if problem else f"timeline drawn to {args.plot}", file=sys.stderr if problem else sys.stdout)
    return 0


def _fleet_drill(args: argparse.Namespace) -> int:
    """``drill --fleet N``: :mod:`resilient_aws.drill.fleet`."""
    if args.plot:
        print("resilient-aws drill: --plot is not available with --fleet (use --json)", file=sys.stderr)
        return 2
    from .drill.bind import BindUnavailable
    from .drill.fleet import FleetDrillUnavailable, format_fleet_table, run_fleet_drill, write_fleet_json
    from .testing.endpoint import PortInUseError

    result = _run_drill(lambda: run_fleet_drill(args.fleet, args.quick, sys.stdout, threads=args.threads,
                                                rate=args.rate, port=args.port, dns=args.dns),
                        (PortInUseError, BindUnavailable, FleetDrillUnavailable))
    if result is None:
        return 2
    _report(args, "fleet drill", format_fleet_table(result), result.duration,
            lambda path: write_fleet_json(result, path))
    return 0


def _run_drill(run: Callable[[], _R], unavailable: tuple[type[Exception], ...]) -> _R | None:
    """``run()``, or None after saying why on stderr when something it needs is missing (a port, BIND,
    redis-server, a part of the drill extra)."""
    try:
        return run()
    except unavailable as e:
        print(f"resilient-aws drill: {e}", file=sys.stderr)
    except ImportError as e:  # a part of the extra missing that the check before does not name
        print(f"resilient-aws drill: {e}; install the drill extra: {DRILL_INSTALL}", file=sys.stderr)
    return None


def _report(args: argparse.Namespace, what: str, table: str, duration: float,
            write_json: Callable[[str], None]) -> None:
    """The table, how long it took, and the JSON when ``--json`` asks for it."""
    print(table, end="")
    print(f"{what} finished in {duration:.1f} s")
    if args.json:
        write_json(args.json)
        print(f"numbers written to {args.json}")


def _bench(args: argparse.Namespace) -> int:
    from .bench.cli import run  # the benchmarks, botocore and (for storm) moto load only now

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``resilient-aws`` and ``python -m resilient_aws``. Returns the exit status."""
    args = build_parser().parse_args(argv)
    # SIGTERM behaves like Ctrl-C: the drill's finally blocks stop every server it started.
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.command == "drill":
            return _drill(args)
        if args.command == "bench":
            return _bench(args)
        return 2  # pragma: no cover - argparse rejects unknown commands
    except KeyboardInterrupt:
        print("\ninterrupted; loopback servers stopped", file=sys.stderr)
        return 130
    finally:
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
