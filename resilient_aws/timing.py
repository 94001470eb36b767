"""Time and chance, injectable: the clock, the sleep and the random source of one session.

Why: every decision resilient_aws takes on the failure path depends on the time (windows, open
breakers, deadlines), waits (backoff) or draws a random number (jitter). Tests and simulations pass
their own ``Timing`` so that a retry's sleep, a breaker's open time and a backoff's jitter can be
checked exactly without sleeping; everyone else gets the real ones.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Timing:
    """``monotonic()`` in seconds, ``sleep(seconds)``, ``random()`` in [0, 1); ``asleep(seconds)``, the
    sleep of asyncio clients (awaited: it must not block the event loop)."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        for name in ("monotonic", "sleep", "random", "asleep"):
            if not callable(getattr(self, name)):
                raise ConfigError(f"Timing.{name}", f"must be callable, got {getattr(self, name)!r}")

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()


REAL = Timing()


def coerce_timing(timing: Timing | None) -> Timing:
    if timing is None:
        return REAL
    if not isinstance(timing, Timing):
        raise ConfigError("timing", f"must be a resilient_aws.Timing, got {timing!r}")
    return timing
