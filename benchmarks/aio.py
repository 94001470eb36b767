"""The asyncio client's figures: ``resilient-aws bench aio``, run where aiobotocore is, and its section of RESULTS.md.

aiobotocore pins its own botocore, so the asyncio client is measured in its own environment (``.venv-aio``,
which ``make test`` creates): this script runs the benchmark with that environment's interpreter, as a user
would, and prints the tables: ``bench aio`` (the asyncio wrapper alone, aiobotocore stubbed below both sides,
and end to end against plain aiobotocore), then ``bench storm`` and ``drill --no-live``, which in that
environment add their aiobotocore and resilient_aws.aio rows beside the thread clients (on aiobotocore's
botocore).

Usage:

    python benchmarks/aio.py                                   # with .venv-aio/bin/python
    python benchmarks/aio.py --quick
    python benchmarks/aio.py --python /path/to/python          # another environment that has aiobotocore
    python benchmarks/aio.py --results benchmarks/RESULTS.md   # also (re)write that file's section

``--results PATH`` replaces the section headed ``## 7. asyncio`` in PATH (or appends it).
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
HEADING = "## 7. asyncio: resilient_aws.aio against aiobotocore"
AIO_PYTHON = ROOT / ".venv-aio" / "bin" / "python"


def section(tables: str, seconds: float, command: str) -> str:
    return _sections.section(HEADING, tables, seconds, command)


def put_section(path: Path, text: str) -> None:
    _sections.put_section(path, HEADING, text)


def _run(python: str, args: list[str], timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    proc = subprocess.run([python, "-m", "resilient_aws", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit(f"aio: {python} -m resilient_aws {' '.join(args)} exited with {proc.returncode}")
    return proc.stdout, time.monotonic() - started


def measure(python: str, quick: bool) -> tuple[str, float, str]:
    """Run the asyncio benchmark, then the storm benchmark and the drill (which add their aiobotocore and
    resilient_aws.aio rows where aiobotocore is installed) with ``python``; (the tables, the seconds they
    took, the commands). Raises on failure."""
    q = ["--quick"] if quick else []
    overhead, t1 = _run(python, ["bench", "aio", *q], 900)
    storm, t2 = _run(python, ["bench", "storm", *q], 1800)
    drill, t3 = _run(python, ["drill", "--no-live", *q], 600)
    start = drill.find("\nbotocore ")  # the drill's table starts with its botocore version line
    drill = drill[start + 1:] if start >= 0 else drill
    text = (f"{overhead.strip()}\n\n### Retry storms, counted at the server (`resilient-aws bench storm` in this "
            f"environment, {t2:.0f} s)\n\n{storm.strip()}\n\n### The outage drill (`python -m resilient_aws drill "
            f"--no-live` in this environment, {t3:.0f} s)\n\n```\n{drill.strip()}\n```\n")
    commands = f"resilient-aws bench aio{' --quick' if quick else ''}, then bench storm and drill, in .venv-aio"
    return text, t1 + t2 + t3, commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke test)")
    parser.add_argument("--python", default=str(AIO_PYTHON), help="an interpreter with resilient-aws[aio] "
                                                                  "(default: .venv-aio/bin/python)")
    parser.add_argument("--results", metavar="PATH", help="also write the tables as a section of PATH")
    args = parser.parse_args(argv)
    if not Path(args.python).exists():
        print(f"aio: {args.python} does not exist; `make venv-aio` creates .venv-aio", file=sys.stderr)
        return 2
    tables, seconds, command = measure(args.python, args.quick)
    print(tables, end="")
    if args.results:
        put_section(Path(args.results), section(tables, seconds, command))
        print(f"section written to {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
