"""Which optional packages a benchmark needs, and the line that says how to get them.

Why: the benchmarks ship with every install, but two of their parts need packages that only an extra
brings: the tenacity + pybreaker comparison needs pybreaker (extra ``bench``), and the storm benchmark
needs moto's HTTP server to play the failing endpoint (extra ``drill``). A benchmark checks here first
and, when something is missing, leaves that part out and says so, rather than failing on an import.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

BENCH_INSTALL = "pip install 'resilient-aws[bench]'"
DRILL_INSTALL = "pip install 'resilient-aws[drill]'"
AIO_INSTALL = "pip install 'resilient-aws[aio]'"

#: What the storm benchmark's loopback endpoint imports beyond the core dependencies (module, requirement).
STORM_MODULES = (
    ("moto", "moto[server,dynamodb]"),
    ("flask", "moto[server,dynamodb]"),  # moto's HTTP server runs on Flask
    ("werkzeug", "werkzeug"),
)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it). A ``None`` in ``sys.modules`` counts
    as absent, as it does for ``import``."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(modules: Iterable[tuple[str, str]]) -> list[str]:
    """The requirements, in order and once each, whose module is not installed."""
    absent: list[str] = []
    for module, requirement in modules:
        if not installed(module) and requirement not in absent:
            absent.append(requirement)
    return absent
