"""The machine and the software a benchmark ran on, in one line.

Why: a time means nothing without the CPU, the core count, the Python and the botocore it was measured
with; every table the benchmarks print carries this line, so a number copied out of it keeps its context.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """``CPU, N cores, OS release, Python X, botocore Y``: where and against what a table was measured."""
    import botocore

    return (f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, botocore {botocore.__version__}")


def software() -> str:
    """``CPython X, botocore Y, resilient_aws Z``."""
    import botocore

    import resilient_aws

    return (f"{platform.python_implementation()} {platform.python_version()}, botocore {botocore.__version__}, "
            f"resilient_aws {resilient_aws.__version__}")
