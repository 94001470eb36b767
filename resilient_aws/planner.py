"""Failover: which region the next attempt of a call goes to, and what it costs.

Runs only off the hot path: after a call's first attempt (with the retries botocore made for it in
its region, see ``retry.py``) failed, when the primary's breaker is not closed, or for a call that
needs preparing (a deadline, a pinned region, tokens or bodies to keep). Each step

1. chooses a target: the regions after the one that just failed, then (wrapping round) the ones
   before it, never the one that just failed (its retry handler already had that choice), skipping
   those that gave this call an error of their own (below) and those whose
   breaker refuses; a region the call has not used yet is a *failover* (nothing to wait for: a
   different endpoint), one it already used is a *retry* (a budget token and a jittered backoff, slept
   before the breaker is asked, so no probe ticket is held while sleeping);
2. makes the attempt on that region's botocore client, whose handler may retry it in place;
3. releases the breaker ticket in ``finally``, whatever happened (``KeyboardInterrupt`` included).

Errors a failover region gives that the primary did not (ResourceNotFound, AccessDenied, Validation:
any caller error) are never the caller's answer: that region is treated as unavailable for the call,
which goes on and, if nothing succeeds, ends with the primary's own last error. A call whose primary
was never tried (its breaker was open) ends with the last endpoint error of another region, or
``CircuitOpenError`` when none gave one. ``RetryPolicy.max_attempts`` bounds the attempts of the
whole call, across regions.

The decisions are written once, in :func:`plan`, a generator that does no I/O: it yields a backoff to
sleep (a float) or an attempt to make (a bound botocore method and its keyword arguments) and is sent
the attempt's result or thrown its exception. :func:`run` drives it with ``time.sleep`` and plain
calls; ``resilient_aws.aio`` drives the same generator with ``asyncio.sleep`` and ``await``. So the
thread and the asyncio client cannot disagree about regions, tickets, budgets or counts, and a
``CancelledError`` (or ``KeyboardInterrupt``) thrown in at a yield runs the same ``finally`` that
releases a probe ticket.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from .breaker import ADMIT, CLOSED, PROBE, REJECT
from .classify import classify
from .errors import CircuitOpenError
from .events import CIRCUIT_OPEN, FAILOVER
from .params import Prepared
from .retry import CallState, error_code, handoff, record, retry_delay

if TYPE_CHECKING:  # pragma: no cover
    from .client import ResilientClient
    from .regions import RegionLane


class Blocking:
    """A step that may wait on the fleet's shared store (a probe lease, a token of the fleet's budget
    floor): ``fn(*args)``, bounded by the store's timeout. A thread calls it; the asyncio driver runs
    it in a worker thread so that the event loop never waits on the network, and if the task is
    cancelled meanwhile, ``undo(result)`` gives back what it obtained (a probe ticket). Without shared
    state no step is ``Blocking``: the breaker and the budget answer from memory."""

    __slots__ = ("args", "fn", "undo")

    def __init__(self, fn: Callable[..., Any], *args: Any, undo: Callable[[Any], None] | None = None) -> None:
        self.fn = fn
        self.args = args
        self.undo = undo


#: What :func:`plan` asks its driver for: a backoff to sleep, an attempt (method, keyword arguments), or
#: a call that may wait on the shared store.
Step = float | tuple[Callable[..., Any], dict[str, Any]] | Blocking
Plan = Generator[Step, Any, Any]


def run(client: ResilientClient, py_name: str, op_name: str, kwargs: dict[str, Any],
        first_exc: Exception | None, *, may_move: bool, started: float | None = None,
        prepared: Prepared | None = None) -> Any:
    """Finish one call; return its result or raise the error the caller should see (threads)."""
    steps = plan(client, py_name, op_name, kwargs, first_exc, may_move=may_move, started=started,
                 prepared=prepared)
    sleep = client._timing.sleep
    sent: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(sent) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        sent = error = None
        try:
            if isinstance(step, float):
                sleep(step)
            elif isinstance(step, Blocking):
                sent = step.fn(*step.args)
            else:
                sent = step[0](**step[1])
        except BaseException as exc:  # the plan decides; KeyboardInterrupt too (it releases its ticket)
            error = exc


def plan(client: ResilientClient, py_name: str, op_name: str, kwargs: dict[str, Any],
         first_exc: Exception | None, *, may_move: bool, started: float | None = None,
         prepared: Prepared | None = None) -> Plan:
    """The decisions of one call that left the hot path, as a generator (see the module's docstring)."""
    timing = client._timing
    policy = client._policy
    deadline = policy.retry.deadline
    state: CallState | None = None
    if first_exc is not None:
        state = handoff.last
        handoff.last = None
        if state is None or not state.saw(first_exc):
            # No endpoint attempt failed: a before-call response (Stubber), parameter validation,
            # missing credentials. Final, untouched, not a health signal.
            client._counters.attempt_made(client._lanes[0], retry=False)
            client._counters.finish(ok=False, caller_error=classify(first_exc).caller_error)
            raise first_exc
    if state is None:
        now = timing.monotonic()
        lanes = client._lanes if may_move else client._lanes[:1]
        deadline_at = (started if started is not None else now) + deadline if deadline is not None else None
        state = CallState(lanes[0], lanes, may_move=may_move, deadline_at=deadline_at)
    lanes = state.lanes
    kwargs = prepared.kwargs if prepared is not None else kwargs
    used = [False] * len(lanes)
    errors: list[BaseException | None] = [None] * len(lanes)  # each region's last error in this call
    failovers = 0
    current = -1
    caller_error = False
    if first_exc is not None:  # the hot path made the primary's first attempt
        client._counters.attempt_made(lanes[0], retry=False)
        used[0] = True
        current = 0
        errors[0] = first_exc
        lanes[0].health.budget.deposit(timing.monotonic())
    try:
        while True:
            # -- 1. choose ------------------------------------------------------------------------
            if current < 0:
                target, ticket = -1, REJECT
                for i, candidate in enumerate(lanes):
                    ticket = yield from _admit(candidate, timing.monotonic())
                    if ticket != REJECT:
                        target = i
                        break
                if target < 0:
                    regions = [lane.region for lane in lanes]
                    client._counters.count(circuit_open_rejections=1)
                    client._emit(CIRCUIT_OPEN, None, op_name, regions=regions)
                    raise CircuitOpenError(service=client._service, operation=op_name, regions=regions)
                if target != 0:
                    failovers += 1  # the primary's breaker is open: served by a fallback
                    client._emit(FAILOVER, lanes[target].region, op_name, from_region=lanes[0].region,
                                 error="circuit_open")
            else:
                verdict = state.verdict
                assert verdict is not None
                if verdict.caller_error:
                    if current == 0:
                        caller_error = True
                        primary_error = errors[0]
                        assert primary_error is not None  # this attempt failed: its error was kept
                        raise primary_error  # the caller's own mistake, as the primary said it
                    state.excluded.add(current)  # that region cannot serve this call
                if state.attempts >= policy.retry.max_attempts:
                    break
                target = _next(state, current, verdict, timing.monotonic())
                if target < 0:
                    break
                lane = lanes[target]
                if used[target]:  # a retry of a region this call used: pay, wait, then ask the breaker
                    args = (client, lane, state, verdict, op_name, timing.monotonic(), error_code(errors[current]))
                    delay = retry_delay(*args) if lane.health.fleet is None else (yield Blocking(retry_delay, *args))
                    if delay is None:
                        break
                    if delay > 0:
                        yield float(delay)  # no ticket is held while the backoff is slept
                    ticket = yield from _admit(lane, timing.monotonic())
                    if ticket == REJECT:
                        break
                    state.retries += 1
                    client._counters.count(retries=1)
                else:
                    if state.deadline_at is not None and timing.monotonic() >= state.deadline_at:
                        client._counters.count(deadline_stops=1)
                        break
                    ticket = yield from _admit(lane, timing.monotonic())
                    if ticket == REJECT:
                        break
                    failovers += 1
                    client._emit(FAILOVER, lane.region, op_name, from_region=lanes[current].region,
                                 error=error_code(errors[current]))
            lane = lanes[target]
            if not used[target]:
                used[target] = True
                lane.health.budget.deposit(timing.monotonic())
            # -- 2. attempt -----------------------------------------------------------------------
            current = target
            state.lane = lane
            state.ticket = ticket
            state.exception = state.response = state.verdict = None
            state.attempts += 1
            client._counters.attempt_made(lane, retry=False)
            if prepared is not None:
                prepared.rewind()
            handoff.pending = state
            ok = False
            try:
                result = yield (getattr(lane.client(), py_name), kwargs)
                ok = True
            except Exception as exc:
                if not state.saw(exc):
                    caller_error = True
                    raise  # failed before reaching the endpoint (parameters, credentials): final
                errors[target] = exc
                continue
            finally:
                handoff.pending = None
                if not ok and state.ticket == PROBE:  # the handler never saw this attempt end
                    lane.health.breaker.release(PROBE)
                    state.ticket = ADMIT
            record(lane, state.ticket, None, timing.monotonic(), False)
            _set_retry_attempts(result, state.attempts)
            client._counters.finish(ok=True, caller_error=False, failovers=failovers)
            return result
        raise _final_error(client, op_name, lanes, errors)
    except BaseException as exc:
        if isinstance(exc, Exception):
            client._counters.finish(ok=False, caller_error=caller_error, failovers=failovers)
            _set_retry_attempts(getattr(exc, "response", None), state.attempts)
        elif not isinstance(exc, GeneratorExit):  # cancelled (asyncio) or interrupted: neither ok nor failed
            client._counters.finish(ok=False, caller_error=False, failovers=failovers, cancelled=True)
        raise


def _admit(lane: RegionLane, now: float) -> Generator[Step, Any, int]:
    """The breaker's admission; a :class:`Blocking` step when it may ask the fleet for the probe lease."""
    breaker = lane.health.breaker
    if lane.health.fleet is None or breaker.state is CLOSED:
        return breaker.admit(now)
    ticket: int = yield Blocking(breaker.admit, now, undo=breaker.release)
    return ticket


def _next(state: CallState, current: int, verdict: Any, now: float) -> int:
    """The next region to try after ``current`` failed with ``verdict``, or -1.

    Never ``current`` itself: its handler already decided whether another attempt there was worth it
    (and made it, inside botocore). Regions after it come first, then, wrapping round, the ones before
    it: going back to the primary after a failover region could not serve the call is a retry.
    """
    if not (state.may_move and (verdict.may_fail_over or verdict.caller_error)):
        return -1
    lanes = state.lanes
    n = len(lanes)
    for step in range(1, n):
        j = (current + step) % n
        if j not in state.excluded and lanes[j].health.breaker.would_admit(now):
            return j
    return -1


def _final_error(client: ResilientClient, op_name: str, lanes: tuple[RegionLane, ...],
                 errors: list[BaseException | None]) -> BaseException:
    """The primary's own last error; else the last endpoint error; else CircuitOpenError."""
    if errors[0] is not None:
        return errors[0]
    for exc in reversed(errors):
        if exc is not None and not _is_caller_error(exc):
            return exc
    regions = [lane.region for lane in lanes]
    return CircuitOpenError(service=client._service, operation=op_name, regions=regions)


def _is_caller_error(exc: BaseException) -> bool:
    return classify(exc).caller_error


def _set_retry_attempts(response: Any, attempts: int) -> None:
    """``RetryAttempts`` counts the retries of the whole call, as botocore counts them in a region."""
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata")
        if isinstance(metadata, dict):
            metadata["RetryAttempts"] = max(0, attempts - 1)
