"""The asyncio driver of the planner: the same decisions (``resilient_aws.planner.plan``), awaited.

Why a driver and not a second planner: which region goes next, what a retry costs, when a probe
ticket is released and what is counted are the same questions for a thread and a task, so they are
answered once, by a generator that does no I/O. This driver awaits the attempts it asks for and
sleeps the backoffs with ``Timing.asleep`` (``asyncio.sleep``). A ``CancelledError`` raised at an
await is thrown into the plan, whose ``finally`` releases a probe ticket synchronously, before
anything else can await, and whose count of the call is "cancelled" (neither ok nor failed).

The attempt is awaited directly in the caller's task (never through ``create_task``, ``wait_for`` or
``shield``): the retry handler hands the call's state back through a context variable, which a new
task would copy and lose.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..planner import Blocking, plan

if TYPE_CHECKING:  # pragma: no cover
    from ..client import ResilientClient
    from ..params import Prepared


async def run(client: ResilientClient, py_name: str, op_name: str, kwargs: dict[str, Any],
              first_exc: Exception | None, *, may_move: bool, started: float | None = None,
              prepared: Prepared | None = None) -> Any:
    """Finish one call; return its result or raise the error the caller should see (asyncio)."""
    steps = plan(client, py_name, op_name, kwargs, first_exc, may_move=may_move, started=started,
                 prepared=prepared)
    asleep = client._timing.asleep
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
                await asleep(step)
            elif isinstance(step, Blocking):
                sent = await off_the_loop(step)
            else:
                sent = await step[0](**step[1])
        except BaseException as exc:  # CancelledError included: the plan releases its ticket, then re-raises
            error = exc


async def off_the_loop(step: Blocking) -> Any:
    """Run a step that may wait on the shared store in a worker thread. If the task is cancelled while
    it runs, the thread finishes anyway and what it obtained is given back (``step.undo``): a probe
    lease granted to a task that is gone would otherwise keep every other task waiting."""
    future = asyncio.get_running_loop().run_in_executor(None, step.fn, *step.args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        undo = step.undo
        if undo is not None:
            def give_back(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    undo(done.result())
            future.add_done_callback(give_back)
        raise
