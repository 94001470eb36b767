"""Run N threads released together, bounded in time, with every worker's error surfaced.

Why: concurrency tests are only worth something if the threads really overlap (a barrier releases
them together), a hung worker fails the test instead of hanging the suite (bounded joins), and an
exception in a worker fails the test instead of vanishing into the thread's stderr.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def run_in_threads(n: int, target: Callable[[int], object], *, timeout: float = 120.0) -> float:
    """Run ``target(i)`` for i in range(n), all started behind one barrier; return the wall time from
    the release to the last join. Raises the first worker error; fails if a worker is still running
    after ``timeout`` seconds."""
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            target(i)
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True, name=f"worker-{i}") for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(10)
    start = time.perf_counter()
    deadline = start + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - start
    hung = [t.name for t in threads if t.is_alive()]
    if hung:
        raise AssertionError(f"{len(hung)} worker thread(s) still running after {timeout} s: {hung[:4]}")
    if errors:
        raise errors[0]
    return elapsed
