"""Past one machine, by simulation: ``resilient-aws bench fleet-sim``, and its section of RESULTS.md.

The simulation itself ships with the package (:mod:`resilient_aws.bench.fleet_sim`): 10, 100, 1,000 and
10,000 processes, each running the library's own breaker, retry budget and shared state on one simulated
clock against an in-memory store that counts its commands, through a dead endpoint and then a healed one,
with shared state and without. This script runs it as a user would (``python -m resilient_aws bench
fleet-sim``, in its own interpreter; about 40 s on one core at the default sizes) and prints the tables.

Usage:

    python benchmarks/fleet_sim.py                      # the four sizes; tables on stdout
    python benchmarks/fleet_sim.py --quick              # 10 and 200 processes, short phases: seconds
    python benchmarks/fleet_sim.py --sizes 10 1000
    python benchmarks/fleet_sim.py --results benchmarks/RESULTS.md   # also (re)write that file's section

``--results PATH`` replaces the section headed ``## 6. Past one machine, by simulation`` in PATH (or
appends it), leaving the rest of the file as it is (``benchmarks/_sections.py``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # _sections.py, also when this file is loaded by its path
    sys.path.insert(0, str(HERE))
import _sections  # noqa: E402

ROOT = HERE.parent
HEADING = "## 6. Past one machine, by simulation"


def section(tables: str, seconds: float, command: str) -> str:
    return _sections.section(HEADING, tables, seconds, command)


def put_section(path: Path, text: str) -> None:
    """Replace this script's section in ``path`` (from its heading to the next ``## `` heading), or append it."""
    _sections.put_section(path, HEADING, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 200 processes, short phases (a smoke test)")
    parser.add_argument("--sizes", nargs="+", metavar="N", help="fleet sizes (default 10 100 1000 10000)")
    parser.add_argument("--results", metavar="PATH", help="also write the tables as a section of PATH")
    args = parser.parse_args(argv)

    bench = ["bench", "fleet-sim", *(["--quick"] if args.quick else []), *(["--sizes", *args.sizes] if args.sizes
                                                                           else [])]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "resilient_aws", *bench], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, timeout=900)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        return proc.returncode
    print(proc.stdout, end="")
    if args.results:
        put_section(Path(args.results), section(proc.stdout, time.monotonic() - started,
                                                "resilient-aws " + " ".join(bench)))
        print(f"section written to {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
