"""The drill's phases: what breaks when, and how long each lasts.

Why a module of its own: the phases are the script of the drill (the failures of 2025-10-20 and its
neighbours, in order); the workload, the status lines and the report only count by them, so the
script can be read, and changed, in one place.

1. healthy;
2. the us-east-1 DNS record emptied (NOERROR, no records: the 2025-10-20 answer);
3. DNS restored, us-east-1 answering 503 to everything;
4. us-east-1 unreachable (connections refused);
5. recovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import PRIMARY

__all__ = ["Phase", "apply_phase", "phases_for"]


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    seconds: float


def phases_for(quick: bool) -> list[Phase]:
    """The five phases; ``quick`` shortens them so that the whole drill fits in 20 s."""
    s = (2.0, 3.5, 3.0, 3.0, 3.0) if quick else (6.0, 10.0, 10.0, 10.0, 10.0)
    return [
        Phase("healthy", "all healthy", s[0]),
        Phase("dns-empty", f"DNS record of {PRIMARY} emptied (NOERROR, no records)", s[1]),
        Phase("503", f"DNS back; {PRIMARY} answers 503 to everything", s[2]),
        Phase("unreachable", f"{PRIMARY} unreachable (connection refused)", s[3]),
        Phase("recovery", "everything healthy again", s[4]),
    ]


def apply_phase(drill: Any, phase: str) -> None:
    """Switch ``drill`` (a :class:`resilient_aws.testing.OutageDrill`) to the faults of ``phase``."""
    if phase == "healthy":
        drill.restore()
    elif phase == "dns-empty":
        drill.dns_empty(PRIMARY)
    elif phase == "503":
        drill.dns_restore(PRIMARY)
        drill.fail(PRIMARY, 503)
    elif phase == "unreachable":
        drill.unreachable(PRIMARY)
    elif phase == "recovery":
        drill.restore()
    else:  # pragma: no cover - phases_for() defines the names
        raise ValueError(phase)
