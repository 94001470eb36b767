"""Timing calls: per-call means, interleaved rounds, and a progress line per round on stderr.

Why interleaved rounds: on a shared machine the noise comes in bursts (another process, a frequency
change). Timing client A for a minute and then client B puts a burst on one side only; alternating short
rounds (A, B, B, A, ...) spreads it over both, and the medians and per-round ratios the tables report
are then comparable. Why progress on stderr: a full run takes minutes, and stdout carries only the
table, so ``resilient-aws bench overhead > table.md`` still shows where the run is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO


class Progress:
    """Writes one line per round (or per step) to stderr: ``overhead   3.2 s  wrapper round 2/21: ...``."""

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream
        self._t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr  # looked up late: tests redirect it
        print(f"{self.name:<8} {time.monotonic() - self._t0:6.1f} s  {text}", file=stream, flush=True)

    def round(self, phase: str, index: int, total: int, values: Mapping[str, float], unit: str = "µs") -> None:
        """``phase round index/total: name value unit, ...``."""
        shown = ", ".join(f"{name} {value:.2f} {unit}" for name, value in values.items())
        self(f"{phase} round {index}/{total}: {shown}")


def per_call_us(fn: Callable[..., Any], calls: int, kwargs: Mapping[str, Any] | None = None) -> float:
    """Mean microseconds per call of ``fn(**kwargs)`` over ``calls`` calls in a row."""
    if kwargs:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(**kwargs)
    else:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
    return (time.perf_counter() - t0) / calls * 1e6


def repeated(fn: Callable[[], Any], calls: int, rounds: int, progress: Progress | None = None,
             label: str = "round") -> list[float]:
    """``rounds`` samples of :func:`per_call_us` (``calls`` calls each), with a progress line per round."""
    samples = []
    for r in range(rounds):
        samples.append(per_call_us(fn, calls))
        if progress is not None:
            progress.round(label, r + 1, rounds, {"per call": samples[-1]})
    return samples


def interleaved(fns: Mapping[str, Callable[..., Any]], rounds: int, calls: int,
                kwargs: Mapping[str, Any] | None = None, progress: Progress | None = None,
                phase: str = "interleaved") -> dict[str, list[float]]:
    """Per-call means of every function in ``fns``, ``rounds`` times, in alternating order.

    Each function first runs a short warm-up (wrappers built, caches filled); then round ``r`` times
    each function once, ``calls`` calls in a row, in the order of ``fns`` on even rounds and reversed
    on odd ones. Returns ``{name: [one mean per round]}``, rounds paired by index.
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for fn in fns.values():
        per_call_us(fn, min(calls, 200), kwargs)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(per_call_us(fns[name], calls, kwargs))
        if progress is not None:
            progress.round(phase, r + 1, rounds, {name: samples[name][-1] for name in names})
    return samples
