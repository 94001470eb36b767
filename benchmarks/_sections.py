"""The section of ``benchmarks/RESULTS.md`` that one benchmark script writes (``--results PATH``).

Why a module: each script that records its own figures (``fleet_sim.py``, ``fleet.py``) owns one
section, found by its heading and replaced in place, so re-running one benchmark never touches the
others' figures; the rule for finding and replacing a section lives here, once. Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["put_section", "section"]


def section(heading: str, body: str, seconds: float, command: str, intro: str = "") -> str:
    """``heading (`command`, N s)``, an optional intro paragraph, then ``body``."""
    intro = f"{intro.strip()}\n\n" if intro.strip() else ""
    return f"{heading} (`{command}`, {seconds:.0f} s)\n\n{intro}{body.strip()}\n"


def put_section(path: Path, heading: str, text: str) -> None:
    """Replace the section of ``path`` that starts with ``heading`` (up to the next ``## `` heading) by
    ``text``, or append ``text``; the rest of the file stays as it is."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(heading)}.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1).rstrip("\n") + "\n"
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text
    path.write_text(new, encoding="utf-8")
