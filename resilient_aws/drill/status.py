"""The drill's live status: one line per client while a phase runs, and the library's log messages.

Why a module of its own: what a user watches during the run is presentation only — it reads the
workload and the servers' counters and never changes them — and it is the one part of the drill that
writes terminal escape codes, so it is kept apart from what is measured.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TextIO

from .clients import call_tag
from .phases import Phase
from .workload import Workload

__all__ = ["Status", "status_lines"]


class Status(logging.Handler):
    """Live lines, one per client (rewritten in place on a terminal; printed per phase otherwise).

    It is also the ``resilient_aws`` logger's handler while the drill runs, so the library's own
    messages (breaker opened, stale DNS served) appear above the status lines, in order, instead of
    tearing them apart on stderr.
    """

    def __init__(self, out: TextIO, live: bool) -> None:
        super().__init__(logging.INFO)
        self.out = out
        self.live = live
        self.drawn = 0
        self.events: list[str] = []
        self.t0 = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(f"  {time.monotonic() - self.t0:5.1f}s  {record.getMessage()}")

    def _flush_events(self) -> None:
        events, self.events = self.events, []
        for line in events:
            self.out.write("\x1b[2K" + line + "\n" if self.live else line + "\n")

    def draw(self, lines: list[str]) -> None:
        if not self.live:
            return
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")
        self._flush_events()
        for line in lines:
            self.out.write("\x1b[2K" + line + "\n")
        self.drawn = len(lines)
        self.out.flush()

    def done(self, lines: list[str]) -> None:
        """Freeze the phase's last status (or print it once when not live)."""
        if self.live:
            self.draw(lines)
            self.drawn = 0
        else:
            self._flush_events()
            for line in lines:
                self.out.write(line + "\n")
            self.out.flush()


def status_lines(drill: Any, workload: Workload, phase: int, phases: list[Phase]) -> list[str]:
    """The status of phase ``phase`` so far: calls and successes (the workload's), attempts per call
    (the servers'), and workers blocked inside a call."""
    tags = {region: drill.counts(region).by_tag for region in drill.regions}
    lines = []
    for label, _, title in workload.specs:
        calls = [c for c in list(workload.calls[label]) if c.phase == phase]
        ok = sum(c.ok for c in calls)
        blocked = sum(1 for (lab, _), (p, _) in list(workload.inflight.items()) if lab == label)
        attempts = sum(t.get(call_tag(label, phase), 0) for t in tags.values())
        pct = f"{100.0 * ok / len(calls):5.1f}%" if calls else "    - "
        per_call = f"{attempts / len(calls):5.2f}" if calls else "    -"
        lines.append(f"  {title:<18} {phases[phase].name:<12} calls {len(calls):>5}  ok {pct}  "
                     f"attempts/call {per_call} (server)  blocked in a call {blocked:>2}")
    return lines
