"""Run every benchmark in one go and write ``benchmarks/RESULTS.md`` (``make results``).

Why one script: the figures in the README must come from one run on one machine, written down with
that machine and the date, not copied by hand from runs made on different days. The benchmarks are the
package's own (``resilient-aws bench``, :mod:`resilient_aws.bench`), so RESULTS.md shows what a user
gets on their machine; this script adds the drill and the page around them. Each benchmark runs in its
own interpreter (as a user runs it) one after the other, never two at once, so they do not steal each
other's cores; their progress lines (stderr) show as they run.

Section 7 (the asyncio client) runs in ``.venv-aio``, the environment with aiobotocore, which pins its own
botocore (``benchmarks/aio.py``). The fleet sections (5: ``drill --fleet 8``, real processes and a real
redis-server; 6: ``bench fleet-sim``, 10 to 10,000 simulated processes) are written by the same code as
``benchmarks/fleet.py`` and ``benchmarks/fleet_sim.py`` (each of which can also rewrite its own section alone).

Usage: python benchmarks/results.py [--out benchmarks/RESULTS.md] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import aio  # benchmarks/aio.py: the asyncio client's section (run in .venv-aio)
import botocore
import fleet  # benchmarks/fleet.py: the fleet drill's section
import fleet_sim  # benchmarks/fleet_sim.py: the fleet simulation's section

import resilient_aws
from resilient_aws.bench.machine import cpu_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(args: list[str], timeout: float) -> tuple[str, float]:
    """Run ``python -m resilient_aws ARGS``; its stdout, and the seconds it took. Its stderr (progress)
    goes to ours as it comes. A failure stops everything, loudly."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "resilient_aws", *args], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit(f"results: python -m resilient_aws {' '.join(args)} exited with {proc.returncode}")
    return proc.stdout, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test; not for the record)")
    args = parser.parse_args(argv)

    quick = ["--quick"] if args.quick else []
    print("resilient-aws bench overhead ...", flush=True)
    overhead_out, t_overhead = run(["bench", "overhead", *quick], 1200)
    print("resilient-aws bench storm ...", flush=True)
    storm_out, t_storm = run(["bench", "storm", *quick], 1800)
    print("resilient-aws bench dns ...", flush=True)
    dns_out, t_dns = run(["bench", "dns", *quick], 600)
    print("resilient-aws drill ...", flush=True)
    drill_out, t_drill = run(["drill", "--no-live", *quick], 300)
    print("resilient-aws drill --fleet 8 ...", flush=True)
    fleet_args = ["drill", "--fleet", "8", *quick]
    fleet_out, t_fleet = run(fleet_args, 600)
    print("resilient-aws bench fleet-sim ...", flush=True)
    sim_args = ["bench", "fleet-sim", *quick]
    sim_out, t_sim = run(sim_args, 900)
    print("resilient-aws bench aio (in .venv-aio) ...", flush=True)
    aio_out, t_aio, aio_command = aio.measure(str(aio.AIO_PYTHON), args.quick)
    overhead, storm, dns = overhead_out.strip(), storm_out.strip(), dns_out.strip()
    start = drill_out.find("\nbotocore ")  # the table starts with its botocore version line
    drill_table = drill_out[start + 1:].strip() if start >= 0 else drill_out.strip()

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    how = " with --quick (a smoke run, not for the record)" if args.quick else ""
    text = f"""# Benchmark results

Written by `python benchmarks/results.py` (`make results`){how}.

- **Date:** {now}
- **Machine:** {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()} ({platform.machine()});
  a shared machine: quote the ratios and medians, never one absolute time.
- **Software:** {platform.python_implementation()} {platform.python_version()}, botocore {botocore.__version__},
  resilient_aws {resilient_aws.__version__}

## 1. Hot-path overhead (`resilient-aws bench overhead`, {t_overhead:.0f} s)

{overhead}

## 2. Retry storms, counted at the server (`resilient-aws bench storm`, {t_storm:.0f} s)

{storm}

## 3. The DNS cache (`resilient-aws bench dns`, {t_dns:.0f} s)

{dns}

## 4. The outage drill (`python -m resilient_aws drill`, {t_drill:.0f} s)

Same offered load through three clients at once; counts from the servers' side (see docs/drill.md).

```
{drill_table}
```

{fleet.section(fleet.table(fleet_out), t_fleet, "python -m resilient_aws " + " ".join(fleet_args)).strip()}

{fleet_sim.section(sim_out, t_sim, "resilient-aws " + " ".join(sim_args)).strip()}

{aio.section(aio_out, t_aio, aio_command).strip()}
"""
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
