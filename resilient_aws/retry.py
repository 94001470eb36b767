"""Same-region retries, decided inside botocore's own endpoint loop.

Why here and not around the client method: botocore's endpoint loop (``Endpoint._send_request``)
already knows how to repeat a request *as the same request*. Between attempts it keeps the built
parameters (so an idempotency token such as ``ClientRequestToken`` is the same on every attempt),
rewinds the body stream, signs again, counts the attempt in the ``amz-sdk-request`` header and
finally reports ``ResponseMetadata.RetryAttempts``. Re-running the whole client method instead
re-builds the parameters (a new token: a retried transaction may apply twice) and re-reads a body
that is already at its end (an empty S3 object). So resilient_aws decides retries at the seam that
botocore's own retry modes use, the ``needs-retry.<service>`` event, and botocore carries them out.

:class:`RetryHandler` is registered on every per-region botocore client in place of botocore's
handler. After every attempt it

- checks a DynamoDB response's ``x-amz-crc32`` against its body (damaged bytes are a failure, and
  never the caller's answer: when no retry is left, ``botocore.exceptions.ChecksumError`` is raised);
- returns at once for a good response (the success path does no other work here);
- on a failure: classifies it, tells the endpoint's breaker, and retries in the same region only if
  the error is retryable, the call has attempts left, the body can be rewound, no other region could
  take the call instead (then the planner in ``planner.py`` moves it), the breaker is closed, the
  endpoint's budget has a token and the backoff fits in the deadline. The backoff sleep happens here,
  before the next attempt, and holds nothing: in-region retries are only made while the breaker is
  closed, so no half-open probe can be left held by an interrupted sleep.

The state of one call (:class:`CallState`) travels in botocore's request context. A call the planner
makes hands its state over through ``handoff.pending``; a call from the hot path has none until its
first failure, when the handler creates it; the handler leaves the final failure's state in
``handoff.last`` so the planner can pick up where the endpoint loop stopped. ``handoff`` is a pair of
context variables, not a thread-local: a thread has its own context, and so has an asyncio task, where
a thread-local would hand one task's state to another task's handler on the same thread. The handler
runs in its caller's context because the caller awaits (or calls) botocore directly, never through a
new task.

:class:`AioRetryHandler` is the same handler for aiobotocore clients: the same decisions (the methods
below are shared), with the body read by ``await`` and the backoff slept by ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
from binascii import crc32
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ChecksumError

from .breaker import ADMIT, CLOSED
from .classify import TRANSIENT, Verdict, classify, classify_response
from .events import BUDGET_DENIED, RETRY

if TYPE_CHECKING:  # pragma: no cover
    from .client import ResilientClient
    from .regions import RegionLane

#: The key of a call's state in botocore's request context.
CONTEXT_KEY = "resilient_aws"

class CallState:
    """One call's progress, shared by the handler (in-region retries) and the planner (regions).

    ``attempts`` counts every attempt of the call in every region (``RetryPolicy.max_attempts``
    bounds it); ``ticket`` is the breaker admission of the attempt in flight; ``exception`` /
    ``response`` / ``verdict`` describe the last failed attempt the handler saw.
    """

    __slots__ = ("attempts", "deadline_at", "exception", "excluded", "lane", "lanes", "may_move", "response",
                 "retries", "ticket", "verdict")

    def __init__(self, lane: RegionLane, lanes: tuple[RegionLane, ...], *, may_move: bool,
                 deadline_at: float | None = None, attempts: int = 0, ticket: int = ADMIT) -> None:
        self.lane = lane
        self.lanes = lanes
        self.may_move = may_move
        self.deadline_at = deadline_at
        self.attempts = attempts
        self.retries = 0
        self.ticket = ticket
        self.excluded: set[int] = set()
        self.exception: BaseException | None = None
        self.response: dict[str, Any] | None = None
        self.verdict: Verdict | None = None

    def saw(self, exc: BaseException) -> bool:
        """Did the handler see the failure that ``exc`` reports (as an exception or a response)?"""
        if self.exception is not None:
            return exc is self.exception
        return self.response is not None and getattr(exc, "response", None) is self.response


_PENDING: ContextVar[CallState | None] = ContextVar("resilient_aws_pending", default=None)
_LAST: ContextVar[CallState | None] = ContextVar("resilient_aws_last", default=None)


class _Handoff:
    """``pending``: set by the planner around the botocore call it makes; ``last``: the state of the
    last call the handler gave up on. Per thread and per asyncio task (context variables holding
    immutable references: a child task copies the context, and must not share a mutable holder)."""

    __slots__ = ()

    @property
    def pending(self) -> CallState | None:
        return _PENDING.get()

    @pending.setter
    def pending(self, state: CallState | None) -> None:
        _PENDING.set(state)

    @property
    def last(self) -> CallState | None:
        return _LAST.get()

    @last.setter
    def last(self, state: CallState | None) -> None:
        _LAST.set(state)


handoff = _Handoff()


def record(lane: RegionLane, ticket: int, verdict: Verdict | None, now: float, count_throttles: bool) -> None:
    """Tell ``lane``'s breaker what one attempt said about the endpoint's health."""
    breaker = lane.health.breaker
    if verdict is None or verdict.caller_error:  # a caller error is proof the endpoint answers
        breaker.on_success(now, ticket)
    elif verdict.endpoint_failure or (verdict.throttle and count_throttles):
        breaker.on_failure(now, ticket)
    else:
        breaker.on_neutral(ticket)


def crc32_error(expected: str | None, body: bytes) -> ChecksumError | None:
    """A ``ChecksumError`` if an ``x-amz-crc32`` value is given and does not match ``body``, else None."""
    if expected is None:
        return None
    actual = crc32(body) & 0xFFFFFFFF
    try:
        if int(expected) == actual:
            return None
    except ValueError:
        pass
    # an int, as botocore's own CRC32 check passes it (botocore-stubs declare str)
    return ChecksumError(checksum_type="crc32", expected_checksum=expected,
                         actual_checksum=actual)  # type: ignore[arg-type]


def rewindable(body: object) -> bool:
    """Can botocore send ``body`` again? Bytes can; a stream only if it can seek."""
    if body is None or isinstance(body, (bytes, bytearray, str, dict)):
        return True
    seekable = getattr(body, "seekable", None)
    if seekable is not None:
        try:
            return bool(seekable())
        except Exception:
            return False
    return hasattr(body, "seek")


class RetryHandler:
    """The ``needs-retry.<service>`` handler of one region's botocore client."""

    __slots__ = ("_check_crc", "_client", "_lane")

    def __init__(self, client: ResilientClient, lane: RegionLane, service_name: str) -> None:
        self._client = client
        self._lane = lane
        self._check_crc = service_name in ("dynamodb", "dynamodbstreams")

    def __call__(self, response: Any = None, caught_exception: BaseException | None = None,
                 request_dict: dict[str, Any] | None = None, operation: Any = None, **kwargs: Any) -> float | None:
        if caught_exception is None and response is not None:
            http = response[0]
            if self._check_crc:
                expected = http.headers.get("x-amz-crc32")
                damaged = crc32_error(expected, http.content) if expected is not None else None
                if damaged is not None:
                    return self._failed(None, damaged, request_dict, operation)
            if http.status_code < 300:
                return None
        return self._failed(response, caught_exception, request_dict, operation)

    def _failed(self, response: Any, exc: BaseException | None, request_dict: dict[str, Any] | None,
                operation: Any) -> float | None:
        state, verdict, delay = self._judge(response, exc, request_dict, operation)
        if delay is not None:
            if delay > 0:
                self._client._timing.sleep(delay)
            if self._go(state):
                return 0  # botocore rewinds, re-signs and sends again; our backoff already slept
        return self._give_up(state, response, exc, verdict)

    # -- the decisions, shared by the sync and the async handler (neither blocks nor awaits) -------
    def _judge(self, response: Any, exc: BaseException | None, request_dict: dict[str, Any] | None,
               operation: Any) -> tuple[CallState, Verdict, float | None]:
        """Count and record a failed attempt; the backoff before a same-region retry, or None."""
        client = self._client
        lane = self._lane
        context = request_dict["context"] if request_dict is not None else {}
        state = context.get(CONTEXT_KEY)
        if state is None:
            state = handoff.pending
            if state is None or state.lane is not lane:  # the hot path's first attempt on the primary
                state = client._state_for_hot_path(lane, operation.name)
            context[CONTEXT_KEY] = state
        parsed = response[1] if response is not None else None
        if exc is not None:
            verdict = classify(exc)
        elif parsed is not None:
            verdict = classify_response(parsed)
        else:  # pragma: no cover - botocore always gives one of the two
            verdict = TRANSIENT
        now = client._timing.monotonic()
        client._counters.attempt_failed(lane, verdict)
        record(lane, state.ticket, verdict, now, client._policy.breaker.count_throttles)
        state.ticket = ADMIT  # the admission was used up; an in-region retry needs a closed breaker
        delay = self._retry_delay(state, verdict, request_dict, operation.name, now, error_code(exc, parsed))
        return state, verdict, delay

    def _retry_delay(self, state: CallState, verdict: Verdict, request_dict: dict[str, Any] | None, op_name: str,
                     now: float, error: str) -> float | None:
        client = self._client
        lane = self._lane
        policy = client._policy
        if not verdict.retryable or state.attempts >= policy.retry.max_attempts:
            return None
        if request_dict is not None and not rewindable(request_dict.get("body")):
            return None  # botocore could not send it again: one attempt, the original error
        if state.may_move and verdict.may_fail_over and client._alternative(state, now):
            return None  # another region can take it now: the planner moves the call
        if lane.health.breaker.state is not CLOSED:
            return None
        return retry_delay(client, lane, state, verdict, op_name, now, error)

    def _go(self, state: CallState) -> bool:
        """After the backoff: retry, unless the breaker opened while we waited (do not pile on)."""
        if self._lane.health.breaker.state is not CLOSED:
            return False
        state.attempts += 1
        state.retries += 1
        self._client._counters.attempt_made(self._lane, retry=True)
        return True

    def _give_up(self, state: CallState, response: Any, exc: BaseException | None, verdict: Verdict) -> float | None:
        """No retry here: leave the failure for the planner (which may move the call) or the caller."""
        state.exception = exc
        state.response = response[1] if exc is None and response is not None else None
        state.verdict = verdict
        handoff.last = state
        if isinstance(exc, ChecksumError):
            raise exc  # damaged bytes are never returned as an answer
        return None


class AioRetryHandler(RetryHandler):
    """The handler of one region's aiobotocore client: aiobotocore awaits ``async`` handlers and
    sleeps the delay they return with ``asyncio.sleep``. The response body is a coroutine there (over
    bytes already read: no I/O), and the backoff is awaited, so the event loop never blocks."""

    __slots__ = ()

    async def __call__(self, response: Any = None, caught_exception: BaseException | None = None,  # type: ignore[override]
                       request_dict: dict[str, Any] | None = None, operation: Any = None,
                       **kwargs: Any) -> float | None:
        if caught_exception is None and response is not None:
            http = response[0]
            if self._check_crc:
                expected = http.headers.get("x-amz-crc32")
                damaged = crc32_error(expected, await http.content) if expected is not None else None
                if damaged is not None:
                    return await self._afailed(None, damaged, request_dict, operation)
            if http.status_code < 300:
                return None
        return await self._afailed(response, caught_exception, request_dict, operation)

    async def _afailed(self, response: Any, exc: BaseException | None, request_dict: dict[str, Any] | None,
                       operation: Any) -> float | None:
        if self._lane.health.fleet is None:
            state, verdict, delay = self._judge(response, exc, request_dict, operation)
        else:  # a retry may ask the fleet's store for a token of its budget floor: not on the event loop
            state, verdict, delay = await asyncio.to_thread(self._judge, response, exc, request_dict, operation)
        if delay is not None:
            if delay > 0:
                await self._client._timing.asleep(delay)  # a cancel here holds nothing: the ticket was used
            if self._go(state):
                return 0
        return self._give_up(state, response, exc, verdict)


def retry_delay(client: ResilientClient, lane: RegionLane, state: CallState, verdict: Verdict, op_name: str,
                now: float, error: str) -> float | None:
    """What any retry of ``lane`` costs, in region or back from another one: a token of the endpoint's
    budget, then the jittered backoff, if it ends before the call's deadline. The backoff to sleep, or
    None (counted, and for the budget an event) when the retry must not happen. Sleeps nothing and
    holds no breaker ticket: the caller sleeps (``time.sleep`` or ``asyncio.sleep``)."""
    if not lane.health.budget.try_withdraw(now):
        client._counters.count(retries_denied_by_budget=1)
        client._emit(BUDGET_DENIED, lane.region, op_name, attempt=state.attempts + 1)
        return None
    delay = client._backoff.delay(state.retries + 1, verdict.throttle, verdict.retry_after)
    if state.deadline_at is not None and now + delay >= state.deadline_at:
        client._counters.count(deadline_stops=1)
        return None
    client._emit(RETRY, lane.region, op_name, attempt=state.attempts + 1, delay=round(delay, 4), error=error)
    return delay


def error_code(exc: BaseException | None, parsed: dict[str, Any] | None = None) -> str:
    """The AWS error code of a failure, or the exception's class name: for events and logs."""
    response = parsed if parsed is not None else getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__ if exc is not None else "unknown"


__all__ = ["CONTEXT_KEY", "AioRetryHandler", "CallState", "RetryHandler", "crc32_error", "error_code", "handoff",
           "record", "retry_delay", "rewindable"]


def install_retry_handler(client: Any, handler: RetryHandler, max_attempts: int) -> None:
    """Make ``handler`` the only retry decision-maker of a botocore client.

    botocore's own handler (any mode: legacy, standard, adaptive's retry part) is unregistered, so no
    second layer multiplies attempts, and ``AWS_MAX_ATTEMPTS``/``AWS_RETRY_MODE`` cannot bring it back.
    The ``max`` of the ``amz-sdk-request`` header is seeded with resilient_aws's own attempt bound.
    """
    from ._compat import RETRY_HANDLER_ID, SEED_MAX_ATTEMPTS_ID

    events = client.meta.events
    name = client.meta.service_model.service_id.hyphenize()
    ours = (f"resilient-aws-retry-{name}", f"resilient-aws-max-attempts-{name}")
    events.unregister(f"needs-retry.{name}", unique_id=RETRY_HANDLER_ID.format(name))
    events.unregister(f"request-created.{name}", unique_id=SEED_MAX_ATTEMPTS_ID.format(name))
    events.unregister(f"needs-retry.{name}", unique_id=ours[0])  # a client wrapped again: the new owner decides
    events.unregister(f"request-created.{name}", unique_id=ours[1])
    events.register(f"needs-retry.{name}", handler, unique_id=ours[0])

    def seed_max_attempts(request: Any, **kwargs: Any) -> None:
        retries = request.context.get("retries")
        if retries is not None:
            retries["max"] = max_attempts

    events.register(f"request-created.{name}", seed_max_attempts, unique_id=ours[1])
