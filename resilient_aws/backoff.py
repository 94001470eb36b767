"""Jittered exponential backoff, built from tenacity's wait strategies.

Why jitter: botocore legacy mode sleeps exactly 0.05·2^(n-1) s, so every client that failed at the
same moment retries at the same moment, again and again. Full jitter (the default) spreads them
uniformly over [0, min(cap, base·2^(n-1))].

tenacity is used only here and only after a failure: building and calling a wait strategy costs
microseconds, which the success path never pays. The strategies only read ``attempt_number`` from
their argument, so a tiny stand-in replaces tenacity's full RetryCallState. tenacity computes the
capped exponential (``wait_exponential``, overflow-safe for any attempt number); the jitter is drawn
here from an injectable ``random()`` so that tests and simulations can fix it (tenacity's random
strategies read the ``random`` module's global state).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from tenacity import wait_exponential

from .policy import RetryPolicy

if TYPE_CHECKING:
    from tenacity import RetryCallState


class _Attempt:
    """What tenacity's wait strategies read of a ``RetryCallState``."""

    __slots__ = ("attempt_number",)

    def __init__(self, n: int) -> None:
        self.attempt_number = n


class Backoff:
    """``delay(retry_number, throttled, retry_after)`` in seconds, within [0, max_delay] unless the
    server asked for more with ``x-amz-retry-after`` (then at most ``max_retry_after_extra`` more).

    Jitter kinds: ``full`` draws uniformly from [0, exp]; ``equal`` from [exp/2, exp] (never retries
    at once); ``none`` is the exponential itself (legacy botocore's shape, for comparisons only).
    """

    __slots__ = ("_extra", "_honor", "_jitter", "_normal", "_random", "_throttle", "max_delay")

    def __init__(self, policy: RetryPolicy, random: Callable[[], float] = _random.random) -> None:
        self.max_delay = policy.max_delay
        self._normal = wait_exponential(multiplier=policy.base_delay, max=policy.max_delay)
        self._throttle = wait_exponential(multiplier=max(policy.throttle_base_delay, policy.base_delay),
                                          max=policy.max_delay)
        self._jitter = policy.jitter
        self._random = random
        self._honor = policy.honor_retry_after
        self._extra = policy.max_retry_after_extra

    def delay(self, retry_number: int, throttled: bool = False, retry_after: float | None = None) -> float:
        strategy = self._throttle if throttled else self._normal
        attempt = cast("RetryCallState", _Attempt(max(1, retry_number)))  # the strategies read attempt_number only
        exp = min(max(float(strategy(attempt)), 0.0), self.max_delay)
        if self._jitter == "full":
            value = exp * self._random()
        elif self._jitter == "equal":
            value = exp / 2 + exp / 2 * self._random()
        else:
            value = exp
        value = min(max(value, 0.0), self.max_delay)
        if retry_after is not None and self._honor:
            value = min(max(value, retry_after), value + self._extra)
        return value
