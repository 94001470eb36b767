"""Error classification: what one failed attempt means for retry, breaker and failover.

The lists of transient and throttling error codes are botocore's own standard-mode lists
(``botocore.retries.standard``, reached through ``_compat``), read at import, not copied: when
botocore learns a new throttling code, resilient_aws learns it too.

- transient (5xx 500/502/503/504, RequestTimeout..., connection errors, timeouts, DNS failures):
  retryable, counts against the endpoint's breaker, may move region;
- other 5xx (501, 505...): not retried, but count against the breaker and may move region — the
  endpoint is unhealthy, not the request;
- throttling (Throttling..., ProvisionedThroughputExceeded, HTTP 429): retryable with the longer
  throttle backoff; counts against the breaker only if ``BreakerPolicy.count_throttles``; does not
  move region (the other region's capacity is not a spare for this one's);
- every other ``ClientError`` (ValidationException, ConditionalCheckFailed, AccessDenied...) and
  every other ``BotoCoreError`` (bad parameters, no credentials): the caller's problem; never
  retried, never counted, never moved;
- anything else (a bug, KeyboardInterrupt): propagates untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ChecksumError, ClientError

from . import _compat
from ._compat import (
    THROTTLING_ERROR_CODES,
    THROTTLING_STATUS_CODES,
    TRANSIENT_ERROR_CODES,
    TRANSIENT_STATUS_CODES,
)

#: botocore's transient exception classes, and a damaged DynamoDB response (CRC32 mismatch).
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (*_compat.TRANSIENT_EXCEPTIONS, ChecksumError)


@dataclass(frozen=True, slots=True)
class Verdict:
    retryable: bool
    throttle: bool
    endpoint_failure: bool   # counts against the breaker (throttles: see BreakerPolicy.count_throttles)
    may_fail_over: bool
    retry_after: float | None = None  # seconds, from x-amz-retry-after

    @property
    def caller_error(self) -> bool:
        return not (self.retryable or self.endpoint_failure or self.throttle)


CALLER_ERROR = Verdict(retryable=False, throttle=False, endpoint_failure=False, may_fail_over=False)
TRANSIENT = Verdict(retryable=True, throttle=False, endpoint_failure=True, may_fail_over=True)
UNHEALTHY = Verdict(retryable=False, throttle=False, endpoint_failure=True, may_fail_over=True)


def _retry_after(response: Mapping[str, Any]) -> float | None:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
    raw = headers.get("x-amz-retry-after")
    if raw is None:
        return None
    try:
        value = float(raw) / 1000.0  # the header carries milliseconds
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def classify_response(response: Mapping[str, Any]) -> Verdict:
    """Classify a parsed error response (the dict botocore builds, or a ``ClientError.response``)."""
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if code in THROTTLING_ERROR_CODES or status in THROTTLING_STATUS_CODES:
        return Verdict(retryable=True, throttle=True, endpoint_failure=False, may_fail_over=False,
                       retry_after=_retry_after(response))
    if code in TRANSIENT_ERROR_CODES or status in TRANSIENT_STATUS_CODES:
        retry_after = _retry_after(response)
        if retry_after is None:
            return TRANSIENT
        return Verdict(retryable=True, throttle=False, endpoint_failure=True, may_fail_over=True,
                       retry_after=retry_after)
    if status >= 500:
        return UNHEALTHY
    return CALLER_ERROR


def classify(exc: BaseException) -> Verdict:
    """Classify one attempt's exception. Pure function; cheap enough for the failure path.

    A ``ChecksumError`` (a DynamoDB response whose ``x-amz-crc32`` does not match its body) is
    transient: the bytes were damaged on the way, the next attempt may well be intact.
    """
    if isinstance(exc, ClientError):
        return classify_response(exc.response or {})
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return TRANSIENT
    return CALLER_ERROR
