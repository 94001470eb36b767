"""The text a run prints, and the Markdown file ``--markdown PATH`` writes.

Why a module of its own: stdout and the file carry the same tables (stdout only the tables, so that it
can be piped; the file with a title, the date, the machine and the command that made it, so that it can
be kept and compared), and one place decides both.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .machine import cpu_model, software


def cell(value: object, spec: str = "") -> str:
    """A table cell: ``value`` formatted with ``spec``, or "-" when there is none."""
    return "-" if value is None else format(value, spec)


TITLES = {
    "overhead": "Hot-path overhead",
    "storm": "Retry storms, counted at the server",
    "dns": "The DNS cache",
}


@dataclass(frozen=True)
class Section:
    """One benchmark's outcome: its tables (Markdown) and the exit status it asks for."""

    name: str
    body: str
    status: int = 0
    skipped: bool = False  # not run for a missing extra; ``body`` says what to install

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)


def for_stdout(section: Section, several: bool) -> str:
    """What stdout shows of one benchmark: its tables as they are, under a ``## title`` heading when
    several benchmarks run (``all``)."""
    if several:
        return f"## {section.title}\n\n{section.body.strip()}\n"
    return section.body.rstrip()


def document(sections: Sequence[Section], command: str) -> str:
    """The whole Markdown file: title, when, where, then each benchmark's section."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# resilient_aws benchmark results",
        "",
        f"Written by `{command}`.",
        "",
        f"- **Date:** {now}",
        f"- **Machine:** {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()} "
        f"({platform.machine()}); quote the ratios and medians, never one absolute time.",
        f"- **Software:** {software()}",
        "",
    ]
    parts = [f"## {s.title} (`resilient-aws bench {s.name}`)\n\n{s.body.strip()}\n" for s in sections]
    return "\n".join(head) + "\n" + "\n".join(parts)


def write(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")
