"""A fleet on this machine: ``python -m resilient_aws drill --fleet 8``, and its section of RESULTS.md.

The fleet drill ships with the package (:mod:`resilient_aws.drill.fleet`): 8 real worker processes
(4 threads x 5 GetItem/s each) against the same loopback servers (moto, the drill's DNS server, a real
``redis-server``), the same scenario twice with the same load: with every process's session sharing
state through Redis, and with each process alone. A healthy phase, a 503 outage, the heal, then a
process started while the DNS record is empty; the endpoint's own counters say how many requests and
probes the outage cost. This script runs it as a user would, in its own interpreter (about 50 s on two
cores; needs redis-server on PATH), and prints the table.

Usage:

    python benchmarks/fleet.py                       # 8 processes; the table on stdout
    python benchmarks/fleet.py --quick               # shorter phases (a smoke test)
    python benchmarks/fleet.py --processes 16
    python benchmarks/fleet.py --results benchmarks/RESULTS.md   # also (re)write that file's section

``--results PATH`` replaces the section headed ``## 5. A fleet on this machine: shared state through
Redis`` in PATH (or appends it), leaving the rest of the file as it is (``benchmarks/_sections.py``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # _sections.py, also when this file is loaded by its path
    sys.path.insert(0, str(HERE))
import _sections  # noqa: E402

ROOT = HERE.parent
HEADING = "## 5. A fleet on this machine: shared state through Redis"
INTRO = ("Real worker processes against the same loopback servers and the same offered load, with shared "
         "state through a real redis-server and alone; requests and probes counted by the endpoint itself, "
         "sampled every 10 ms (see docs/drill.md, `--fleet`, and docs/fleet.md).")
#: The banner lines kept in RESULTS.md (the others name ports, which change from run to run).
_KEPT = ("  load:", "  policy:", "  per mode:")


def table(stdout: str) -> str:
    """The drill's load, policy and phases, then its table, verdict and notes (not its progress lines)."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("shared (Redis)")), None)
    if start is None:
        return stdout.strip()
    head = [line.strip() for line in lines[:start] if line.startswith(_KEPT)]
    return "\n".join([*head, "", *lines[start:]]).strip()


def section(text: str, seconds: float, command: str) -> str:
    return _sections.section(HEADING, f"```\n{text.strip()}\n```", seconds, command, INTRO)


def put_section(path: Path, text: str) -> None:
    """Replace this script's section in ``path`` (from its heading to the next ``## `` heading), or append it."""
    _sections.put_section(path, HEADING, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8, metavar="N", help="fleet size, 2..32 (default 8)")
    parser.add_argument("--quick", action="store_true", help="shorter phases (a smoke test; not for the record)")
    parser.add_argument("--results", metavar="PATH", help="also write the table as a section of PATH")
    args = parser.parse_args(argv)

    drill = ["drill", "--fleet", str(args.processes), *(["--quick"] if args.quick else [])]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "resilient_aws", *drill], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        return proc.returncode
    print(proc.stdout, end="")
    if args.results:
        put_section(Path(args.results), section(table(proc.stdout), time.monotonic() - started,
                                                "python -m resilient_aws " + " ".join(drill)))
        print(f"section written to {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
