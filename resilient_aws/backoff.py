"""Jittered exponential backoff, built from tenacity's wait strategies.

Why jitter: botocore legacy mode sleeps exactly 0.05·2^(n-1) s, so every client that failed at the
same moment retries at the same moment, again and again. Full jitter (the default) spreads them
uniformly over [0, min(cap, base·2^(n-1))].

tenacity is used only here and only after a failure: building and calling a wait strategy costs
microseconds, which the success path never pays. The strategies only read ``attempt_number`` from
their argument, so a tiny stand-in replaces tenacity's full RetryCallState.
"""

from __future__ import annotations

from tenacity import wait_exponential, wait_random_exponential

from .policy import RetryPolicy


class _Attempt:
    __slots__ = ("attempt_number",)

    def __init__(self, n: int) -> None:
        self.attempt_number = n


def _strategy(kind: str, base: float, cap: float):
    if kind == "full":
        return wait_random_exponential(multiplier=base, max=cap)
    if kind == "equal":  # half fixed, half random: never retries immediately
        return wait_exponential(multiplier=base / 2, max=cap / 2) + wait_random_exponential(
            multiplier=base / 2, max=cap / 2)
    return wait_exponential(multiplier=base, max=cap)


class Backoff:
    """``delay(retry_number, throttled, retry_after)`` in seconds, within [0, max_delay] unless the
    server asked for more with ``x-amz-retry-after`` (then at most ``max_retry_after_extra`` more)."""

    __slots__ = ("_extra", "_honor", "_normal", "_throttle", "max_delay")

    def __init__(self, policy: RetryPolicy) -> None:
        self.max_delay = policy.max_delay
        self._normal = _strategy(policy.jitter, policy.base_delay, policy.max_delay)
        self._throttle = _strategy(policy.jitter, max(policy.throttle_base_delay, policy.base_delay),
                                   policy.max_delay)
        self._honor = policy.honor_retry_after
        self._extra = policy.max_retry_after_extra

    def delay(self, retry_number: int, throttled: bool = False, retry_after: float | None = None) -> float:
        strategy = self._throttle if throttled else self._normal
        value = float(strategy(_Attempt(max(1, retry_number))))
        value = min(max(value, 0.0), self.max_delay)
        if retry_after is not None and self._honor:
            value = min(max(value, retry_after), value + self._extra)
        return value
