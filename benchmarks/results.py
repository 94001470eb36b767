"""Run every benchmark in one go and write ``benchmarks/RESULTS.md`` (``make results``).

Why one script: the figures in the README must come from one run on one machine, written down with
that machine and the date, not copied by hand from runs made on different days. Each benchmark runs
in its own interpreter (as a user runs it) one after the other, never two at once, so they do not
steal each other's cores.

Usage: python benchmarks/results.py [--out benchmarks/RESULTS.md] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import botocore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: list[str], timeout: float) -> tuple[str, float]:
    """Run one benchmark; its stdout, and the seconds it took. A failure stops everything, loudly."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"results: {' '.join(args)} exited with {proc.returncode}")
    return proc.stdout, time.monotonic() - started


def strip_title(markdown: str) -> str:
    """overhead.py writes a whole file (title first); keep its body only."""
    lines = markdown.splitlines()
    while lines and (lines[0].startswith("# ") or lines[0].startswith("`python benchmarks/") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test; not for the record)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        overhead_md = Path(tmp) / "overhead.md"
        storm_md = Path(tmp) / "storm.md"
        quick_overhead = ["--rounds", "5", "--calls", "2000", "--http-calls", "100"] if args.quick else []
        print("overhead.py ...", flush=True)
        _, t_overhead = run([str(HERE / "overhead.py"), "--markdown", str(overhead_md), *quick_overhead], 1200)
        print("storm.py ...", flush=True)
        _, t_storm = run([str(HERE / "storm.py"), "--markdown", str(storm_md), *(["--quick"] if args.quick else [])],
                         1800)
        print("dns_cache.py ...", flush=True)
        dns_out, t_dns = run([str(HERE / "dns_cache.py"), *(["--quick"] if args.quick else [])], 600)
        print("drill ...", flush=True)
        drill_out, t_drill = run(["-m", "resilient_aws", "drill", "--no-live", *(["--quick"] if args.quick else [])],
                                 300)
        overhead = strip_title(overhead_md.read_text())
        storm = storm_md.read_text().strip()

    dns = dns_out.strip()
    if dns.startswith("## "):
        dns = "\n".join(dns.splitlines()[1:]).strip()
    start = drill_out.find("\nbotocore ")  # the table starts with its botocore version line
    drill_table = drill_out[start + 1:].strip() if start >= 0 else drill_out.strip()

    import resilient_aws

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    how = " with --quick (a smoke run, not for the record)" if args.quick else ""
    text = f"""# Benchmark results

Written by `python benchmarks/results.py` (`make results`){how}.

- **Date:** {now}
- **Machine:** {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()} ({platform.machine()});
  a shared machine: quote the ratios and medians, never one absolute time.
- **Software:** {platform.python_implementation()} {platform.python_version()}, botocore {botocore.__version__},
  resilient_aws {resilient_aws.__version__}

## 1. Hot-path overhead (`benchmarks/overhead.py`, {t_overhead:.0f} s)

{overhead}

## 2. Retry storms, counted at the server (`benchmarks/storm.py`, {t_storm:.0f} s)

{storm}

## 3. The DNS cache (`benchmarks/dns_cache.py`, {t_dns:.0f} s)

{dns}

## 4. The outage drill (`python -m resilient_aws drill`, {t_drill:.0f} s)

Same offered load through three clients at once; counts from the servers' side (see docs/drill.md).

```
{drill_table}
```
"""
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
