"""The drill's asyncio rows: plain aiobotocore and ``resilient_aws.aio``, each in a process of its own.

Why a process per asyncio client: what an event loop's lag says depends on what else runs in its
interpreter. The drill's own process hosts the loopback servers (moto, werkzeug, the DNS server: dozens
of threads sharing one GIL, and their garbage collections); measured there, a loop that runs nothing
but a 1 ms heartbeat is late by tens of milliseconds at worst, whoever owns the loop. So each asyncio
client runs where an asyncio service runs, alone in its interpreter: a child process (``spawn``) whose
main thread runs one event loop hosting that client, ``cfg.threads`` tasks of the workload's
:meth:`~resilient_aws.drill.workload.Workload.run_task` (the same schedule, tags and records as a worker
thread) and a :class:`Heartbeat`. The plain aiobotocore baseline has a process of its own too.

:class:`AioProcessHost` is the parent's side, a :class:`~resilient_aws.drill.workload.TaskHost`: it
starts the child, mirrors the phase into shared memory (a call's phase is read when it starts, as for
a thread), receives the child's call records every 100 ms into the drill's ``Workload`` (so the status
lines, metrics and report treat them as any client's), and relays the child's ``resilient_aws`` log
messages to the drill's log. Requests are tagged by the same ``before-send`` handler (its tag is a
context variable: per task) and counted by the same servers.

The loop lag: the heartbeat sleeps 1 ms at a time and records how late it wakes. A callback that holds
the loop for 6 ms makes the next beat about 6 ms late, so the largest lateness bounds how long anything
on that loop ran without yielding, plus the timer's 1 ms granularity and the time the OS ran other
processes instead. That last part is not the loop's doing (on a busy two-CPU machine a process running
nothing but the heartbeat sees 10 ms), so on Linux each beat's lateness is also reported less the loop
thread's wait for a CPU (its schedstat run delay): ``held_max_ms``, how long the loop was held by what
ran on it. Garbage collections are recorded beside them. With ``cfg.loop_debug`` the child also times
every callback (wall and CPU) and reports those longer than 5 ms (:class:`_CallbackTimer`).

How plain aiobotocore resolves names: as in a stock process, aiohttp's ``TCPConnector`` with its own
DNS cache on (``ttl_dns_cache`` 10 s, aiohttp's default), asking a resolver on a miss. A stock process's
resolver is ``getaddrinfo`` in a thread (aiohttp's ``ThreadedResolver``), which cannot be aimed at the
drill's DNS server, and ``AsyncResolver`` needs aiodns; so :class:`UncachedAioResolver` runs
:mod:`~resilient_aws.drill.baseline_dns`'s lookup (the botocore clients' stand-in for ``getaddrinfo``) in a
worker thread, as ``ThreadedResolver`` does: a query to the drill's server (A, then AAAA) on every miss,
with no memory of past answers.

Importing this module imports neither aiobotocore nor aiohttp; the child does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import importlib.util
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from .clients import _tag_request, drill_policy
from .config import PRIMARY, SECONDARY, TABLE, DrillConfig
from .workload import Call, Workload

__all__ = ["HEARTBEAT", "AioProcessHost", "AioSpec", "Heartbeat", "UncachedAioResolver", "aio_info",
           "make_aio_clients", "uncached_aio_resolver"]

#: The heartbeat's period (seconds).
HEARTBEAT = 0.001
#: Lateness thresholds the heartbeat counts beats over (milliseconds).
_OVER_MS = (1, 2, 5, 10)
#: How often a child sends its new call records (seconds).
_SEND_EVERY = 0.1
#: Creates an asyncio client on the running loop and enters it on the given stack.
Opener = Callable[[AsyncExitStack], Coroutine[Any, Any, Any]]
logger = logging.getLogger(__name__)


# -- the measurement ------------------------------------------------------------------------------
class Heartbeat:
    """A task that sleeps ``interval`` seconds at a time and records how late each wake-up is; and the
    process's garbage collections meanwhile (``gc.callbacks``), which stop every thread.

    Two numbers per beat: the lateness itself (``lags``), and, where Linux says how long the loop's
    thread waited for a CPU (``/proc/thread-self/schedstat``, its run delay), the lateness less that
    wait (``held``): how long the loop was held by what ran on it (code, or a call that blocks),
    without the time the OS gave the CPU to other processes. On a busy machine the first can be late by
    10 ms for a loop that runs nothing but this heartbeat; the second cannot.
    """

    def __init__(self, interval: float = HEARTBEAT) -> None:
        self.interval = interval
        self.running = False
        self.lags: list[float] = []     # seconds late, one per beat
        self.held: list[float] = []     # seconds late less the loop thread's wait for a CPU, one per beat
        self.cpu_wait = 0.0             # the loop thread's run delay over all beats (seconds)
        self.worst_at: float | None = None  # when the latest beat was due (time.monotonic())
        self.worst_held_at: float | None = None
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0

    async def run(self) -> None:
        """Beat until :attr:`running` is cleared (or the task is cancelled)."""
        self.running = True
        loop = asyncio.get_running_loop()
        worst = worst_held = 0.0
        schedstat = _open_schedstat()
        gc.callbacks.append(self._gc)
        try:
            waited = _run_delay(schedstat)
            while self.running:
                due = loop.time() + self.interval
                await asyncio.sleep(self.interval)
                lag = max(0.0, loop.time() - due)
                self.lags.append(lag)
                if lag > worst:
                    worst = lag
                    self.worst_at = time.monotonic() - lag
                if schedstat is not None:
                    before, waited = waited, _run_delay(schedstat)
                    self.cpu_wait += waited - before
                    held = max(0.0, lag - (waited - before))
                    self.held.append(held)
                    if held > worst_held:
                        worst_held = held
                        self.worst_held_at = time.monotonic() - lag
        finally:
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(self._gc)
            if schedstat is not None:
                os.close(schedstat)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    def summary(self, t0: float | None = None) -> dict[str, Any]:
        """``beats``; ``max_ms``, ``p99_ms``, ``p50_ms`` and beats later than 1/2/5/10 ms (``over_ms``) of
        the lateness, and ``worst_at`` (seconds since ``t0``); the same of the lateness less the wait for
        a CPU (``held_*``: None where Linux's schedstat is not available) and that wait in all
        (``cpu_wait_ms``); the garbage collections."""
        def ms(values: list[float], q: float) -> float | None:
            return round(1000 * values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))], 2) \
                if values else None

        def at(when: float | None) -> float | None:
            return round(when - t0, 3) if when is not None and t0 is not None else None

        lags, held = sorted(self.lags), sorted(self.held)
        return {
            "interval_ms": self.interval * 1000,
            "beats": len(lags),
            "max_ms": ms(lags, 1.0),
            "p99_ms": ms(lags, 0.99),
            "p50_ms": ms(lags, 0.50),
            "over_ms": {str(t): sum(1 for lag in lags if lag > t / 1000) for t in _OVER_MS},
            "worst_at": at(self.worst_at),
            "held_max_ms": ms(held, 1.0),
            "held_p99_ms": ms(held, 0.99),
            "held_over_ms": {str(t): sum(1 for h in held if h > t / 1000) for t in _OVER_MS} if held else None,
            "held_worst_at": at(self.worst_held_at),
            "cpu_wait_ms": round(1000 * self.cpu_wait, 1) if held else None,
            "gc_collections": len(self.gc_pauses),
            "gc_max_ms": round(1000 * max(self.gc_pauses), 2) if self.gc_pauses else 0.0,
        }


def _open_schedstat() -> int | None:
    """This thread's ``/proc/thread-self/schedstat`` (Linux), kept open: one ``pread`` per beat."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None
    if _run_delay(fd) is None:
        os.close(fd)
        return None
    return fd


def _run_delay(fd: int | None) -> Any:
    """Seconds this thread has waited on a run queue (runnable, not running), or None."""
    if fd is None:
        return None
    try:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


# -- the parent's side ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AioSpec:
    """What a child needs to build its client (picklable): ``label`` "aiobotocore" or "aio"."""

    label: str
    urls: dict[str, str]
    dns_host: str
    dns_port: int
    cfg: DrillConfig
    policy: Any = None          # resilient_aws.Policy of the "aio" client
    debug: bool | str = False   # True: time every callback; "stacks": and sample the slow ones' stacks


class AioProcessHost:
    """One asyncio client in a child process (see the module docstring): a
    :class:`~resilient_aws.drill.workload.TaskHost` for the drill's workload.

    ``info`` (after :meth:`wait_ready`): versions and the plain client's retry configuration;
    ``loop_lag``, ``stats`` and ``slow_callbacks`` (after :meth:`stop_load`): the heartbeat's summary,
    the client's ``stats()`` (``{}`` for plain aiobotocore) and, in debug mode, the callbacks longer
    than 5 ms (wall and CPU milliseconds, the callback, a sample of its stack).
    """

    def __init__(self, spec: AioSpec) -> None:
        self.spec = spec
        self.label = spec.label
        ctx = multiprocessing.get_context("spawn")  # never fork a process full of server threads
        self._conn, child_conn = ctx.Pipe()
        self._phase = ctx.RawValue("i", 0)
        self._proc = ctx.Process(target=_child_main, args=(spec, child_conn, self._phase),
                                 name=f"drill-{spec.label}", daemon=True)
        self._child_conn = child_conn
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"drill-{spec.label}-reader", daemon=True)
        self._ready = threading.Event()
        self._done = threading.Event()
        self._workload: Workload | None = None
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self.loop_lag: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}
        self.slow_callbacks: list[dict[str, Any]] = []

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> AioProcessHost:
        """Start the child (it creates, enters and warms up its client); see :meth:`wait_ready`."""
        self._proc.start()
        self._child_conn.close()  # the child's end: EOF here when the child is gone
        self._reader.start()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the drill's {self.label} client did not start within {timeout:.0f} s")
        if self.error is not None:
            raise RuntimeError(f"the drill's {self.label} client failed: {self.error}")

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to close its client and exit; end it if it does not (bounded)."""
        self._send(("close",))
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(2.0)
        if self._proc.is_alive():  # pragma: no cover - terminate() ignored
            self._proc.kill()
            self._proc.join(2.0)
        self._reader.join(2.0)
        self._conn.close()

    # -- TaskHost ------------------------------------------------------------------------------
    def start_load(self, workload: Workload, label: str) -> None:
        self._workload = workload
        self._phase.value = workload.phase_of()
        self._send(("start", workload.t0))

    def set_phase(self, phase: int) -> None:
        self._phase.value = phase  # shared memory: the child's next call reads it

    def stop_load(self, timeout: float) -> None:
        self._send(("stop", timeout))
        self._done.wait(timeout + 5.0)

    # -- the pipe ------------------------------------------------------------------------------
    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._conn.send(message)

    def _read(self) -> None:
        """The parent's reader thread: every message of the child, until it is gone."""
        for _ in range(10_000_000):  # bounded; ends at EOF long before
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "ready":
                self.info = message[1]
                self._ready.set()
            elif kind == "error":
                self.error = message[1]
                self._ready.set()
                self._done.set()
            elif kind == "log":
                logging.getLogger(message[1]).log(message[2], "%s", message[3])
            elif kind == "calls":
                self._merge(message[1], message[2])
            elif kind == "done":
                self._merge(message[1], message[2])
                self.loop_lag, self.stats, self.slow_callbacks = message[3], message[4], message[5]
                self._done.set()
        self._ready.set()
        self._done.set()

    def _merge(self, calls: list[Call], inflight: dict[int, tuple[int, float]]) -> None:
        workload = self._workload
        if workload is None:
            return
        workload.calls[self.label].extend(calls)
        for key in [k for k in list(workload.inflight) if k[0] == self.label and k[1] not in inflight]:
            workload.inflight.pop(key, None)
        for worker, started in inflight.items():
            workload.inflight[(self.label, worker)] = started


def make_aio_clients(drill: Any, cfg: DrillConfig, labels: tuple[str, ...], *,
                     debug: bool | str | None = None) -> dict[str, AioProcessHost]:
    """``{label: host}`` for the asyncio clients named in ``labels`` ("aiobotocore", "aio"), each started
    in a process of its own (in parallel), aimed at ``drill`` with DNS names of its own, warmed up.
    On a failure the hosts already started are closed. ``debug`` (default ``cfg.loop_debug``): see
    :class:`AioSpec`."""
    debug = cfg.loop_debug if debug is None else debug
    hosts: dict[str, AioProcessHost] = {}
    try:
        for label in labels:
            spec = AioSpec(label=label, urls=drill.endpoint_urls("dynamodb", label=label), dns_host=drill.dns.host,
                           dns_port=drill.dns.port, cfg=cfg,
                           policy=drill_policy(drill, cfg) if label == "aio" else None, debug=debug)
            hosts[label] = AioProcessHost(spec).start()
        for host in hosts.values():
            host.wait_ready()
    except BaseException:
        for host in hosts.values():
            host.close(timeout=5.0)
        raise
    return hosts


def aio_info() -> dict[str, str]:
    """The versions the asyncio rows ran on (aiobotocore, its botocore, aiohttp)."""
    from importlib.metadata import version

    return {name: version(name) for name in ("aiobotocore", "botocore", "aiohttp")}


# -- the child ------------------------------------------------------------------------------------
class _Relay(logging.Handler):
    """The child's ``resilient_aws`` log records, sent to the parent's drill log."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__(logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self._send(("log", record.name, record.levelno, record.getMessage()))


def _package_dir(name: str) -> str:
    """The folder of an installed package (with a trailing separator), or "" when it is not installed."""
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return os.path.dirname(origin) + os.sep if origin else ""


class _Owner:
    """Whose code a stack sample of the loop thread is in: the innermost frame that belongs to
    resilient_aws's library code (``LIBRARY``: not its drill or testing harness), to the AWS client
    below it (aiobotocore, botocore, aiohttp, ...: ``CLIENT``) or to the harness decides. Frames of the
    standard library and of the library's own dependencies (dnspython, cachetools, tenacity, redis)
    count for whoever called them: a blocking DNS query made by resilient_aws is resilient_aws's."""

    LIBRARY, CLIENT, HARNESS, OTHER = "library", "client", "harness", "other"

    def __init__(self) -> None:
        root = _package_dir("resilient_aws")
        self._library = root
        self._harness = tuple(root + part + os.sep for part in ("drill", "testing", "bench"))
        self._client = tuple(d for d in map(_package_dir, ("aiobotocore", "botocore", "aiohttp")) if d)
        self._cache: dict[str, str] = {}

    def of(self, frame: Any) -> str:
        for _ in range(200):  # bounded walk to the outermost frame
            if frame is None:
                break
            owner = self._classify(frame.f_code.co_filename)
            if owner != self.OTHER:
                return owner
            frame = frame.f_back
        return self.OTHER

    def _classify(self, filename: str) -> str:
        owner = self._cache.get(filename)
        if owner is None:
            if filename.startswith(self._harness):
                owner = self.HARNESS
            elif filename.startswith(self._library):
                owner = self.LIBRARY
            elif filename.startswith(self._client):
                owner = self.CLIENT
            else:
                owner = self.OTHER
            self._cache[filename] = owner
        return owner


class _CallbackTimer:
    """Debug mode's culprit finder: times every callback the loop runs, wall clock and the loop
    thread's CPU time, and keeps those longer than ``threshold`` with what was running. With
    ``sample_stacks`` a watchdog thread samples the loop thread's stack while a callback runs longer
    than a fifth of ``threshold`` (the interpreter switching threads every 0.5 ms for it), so a slow
    callback names the code it was in, not only its task; that perturbs what it measures.

    asyncio's own debug mode names the callback too, but slows every callback down (it records where
    each handle was created), which inflates what it measures; this adds two clock reads per callback.
    """

    def __init__(self, threshold: float = 0.005, *, sample_stacks: bool = False) -> None:
        self.threshold = threshold
        self.sample_stacks = sample_stacks
        self.owner = _Owner()
        self.library_max = 0.0         # the longest time one callback spent in resilient_aws's own code
        self.library_worst: list[str] = []
        self._library_now = 0.0        # ...in the callback running now
        self._last_sample = 0.0
        self.slow: list[dict[str, Any]] = []
        self._running: tuple[float, int] | None = None  # (started, callback number)
        self._count = 0
        self._samples: dict[int, list[list[str]]] = {}
        self._stop = threading.Event()
        self._thread_id = threading.get_ident()
        self._original: Any = None

    def install(self) -> None:
        handle_class: Any = asyncio.events.Handle
        original = self._original = handle_class._run
        timer = self

        def _run(handle: Any) -> None:
            timer._count += 1
            number = timer._count
            wall, cpu = time.perf_counter(), time.thread_time()
            timer._library_now = 0.0
            timer._last_sample = wall
            timer._running = (wall, number)
            try:
                original(handle)
            finally:
                timer._running = None
                took = time.perf_counter() - wall
                if took > timer.threshold and len(timer.slow) < 100:
                    callback = getattr(handle, "_callback", None)
                    owner = getattr(callback, "__self__", None)
                    timer.slow.append({"at": time.monotonic(), "wall_ms": round(1000 * took, 2),
                                       "cpu_ms": round(1000 * (time.thread_time() - cpu), 2),
                                       "callback": repr(owner if isinstance(owner, asyncio.Task) else handle)[:400],
                                       "stacks": timer._samples.pop(number, [])})
                timer._samples.pop(number, None)

        handle_class._run = _run
        sys.setswitchinterval(0.0005)  # the watchdog must get the GIL while a callback still runs
        threading.Thread(target=self._watch, name="drill-loop-watchdog", daemon=True).start()

    def _watch(self) -> None:
        import traceback

        while not self._stop.wait(0.0005):  # ends with the load (remove())
            running = self._running
            if running is None:
                continue
            now = time.perf_counter()
            frame = sys._current_frames().get(self._thread_id)
            if running is self._running and frame is not None:
                since, self._last_sample = self._last_sample, now
                if self.owner.of(frame) == _Owner.LIBRARY:
                    self._library_now += now - since
                    if self._library_now > self.library_max:
                        self.library_max = self._library_now
                        self.library_worst = [f"{f.filename}:{f.lineno} {f.name}"
                                              for f in traceback.extract_stack(frame)[-14:]]
            if not self.sample_stacks or now - running[0] < self.threshold * 0.2:
                continue
            samples = self._samples.setdefault(running[1], [])
            frame = sys._current_frames().get(self._thread_id)
            if frame is not None and len(samples) < 20:
                samples.append([f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack(frame)[-14:]])

    def attribution(self) -> dict[str, Any]:
        """How long resilient_aws's own code held the loop in one callback at most (sampled every 0.5 ms:
        the time from the sample before to a sample that found the loop thread in the library)."""
        return {"library_max_ms": round(1000 * self.library_max, 2), "library_worst_stack": self.library_worst}

    def remove(self) -> None:
        self._stop.set()
        if self._original is not None:
            handle_class: Any = asyncio.events.Handle
            handle_class._run = self._original


def _child_main(spec: AioSpec, conn: Any, phase: Any) -> None:
    """The child process: one event loop, one client (see the module docstring). With ``spec.debug``
    every callback is timed and the slow ones reported (:class:`_CallbackTimer`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it closes the child
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            conn.send(message)

    relay = _Relay(send)
    library = logging.getLogger("resilient_aws")
    library.addHandler(relay)
    library.setLevel(logging.INFO)
    library.propagate = False
    try:
        asyncio.run(_child(spec, conn, phase, send))
    except BaseException as e:  # the parent is told, then the child ends
        with contextlib.suppress(Exception):
            send(("error", f"{type(e).__name__}: {e}"))
    finally:
        library.removeHandler(relay)
        with contextlib.suppress(Exception):
            conn.close()


async def _child(spec: AioSpec, conn: Any, phase: Any, send: Callable[[tuple[Any, ...]], None]) -> None:
    loop = asyncio.get_running_loop()
    timer = _CallbackTimer(sample_stacks=spec.debug == "stacks")
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def receive() -> None:
        try:
            inbox.put_nowait(conn.recv())
        except (EOFError, OSError):  # the parent is gone: close
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(("close",))

    loop.add_reader(conn.fileno(), receive)
    importlib.import_module("resilient_aws.testing.counters")  # the tag handler's import, not on the loop later
    opener = _plain_opener(spec) if spec.label == "aiobotocore" else _resilient_opener(spec)
    async with AsyncExitStack() as stack:
        client = await opener(stack)
        with contextlib.suppress(Exception):  # warm-up: the first connection and DNS answer
            await client.get_item(TableName=TABLE, Key={"pk": {"S": "k000"}})
        send(("ready", {**aio_info(), **_retries(client, spec)}))
        message = await inbox.get()
        if message[0] != "start":
            return
        workload = Workload({spec.label: client}, spec.cfg, message[1], lambda: int(phase.value))
        heartbeat = Heartbeat()
        if spec.debug:
            timer.install()
        beat = asyncio.create_task(heartbeat.run(), name="heartbeat")
        workers = [asyncio.create_task(workload.run_task(spec.label, w, client), name=f"drill-{spec.label}-{w}")
                   for w in range(spec.cfg.threads)]
        sent = [0]

        def records() -> tuple[list[Call], dict[int, tuple[int, float]]]:
            calls = workload.calls[spec.label]
            new, sent[0] = calls[sent[0]:], len(calls)
            return new, {worker: started for (_, worker), started in list(workload.inflight.items())}

        async def sender() -> None:
            for _ in range(10_000_000):  # bounded; cancelled at the end
                await asyncio.sleep(_SEND_EVERY)
                send(("calls", *records()))

        feeding = asyncio.create_task(sender(), name="records")
        message = await inbox.get()
        workload.stop.set()
        if message[0] == "stop":
            await asyncio.wait(workers, timeout=float(message[1]))
        heartbeat.running = False
        timer.remove()
        feeding.cancel()
        await asyncio.wait((beat,), timeout=1.0)
        stats = getattr(client, "stats", None)
        slow = [{**c, "at": round(c["at"] - workload.t0, 3)} for c in timer.slow]  # drill seconds
        lag = {**heartbeat.summary(workload.t0), **(timer.attribution() if spec.debug else {})}
        send(("done", *records(), lag, dict(stats()) if callable(stats) else {}, slow))
        while message[0] != "close":  # bounded by the parent, who sends "close" (or goes away: EOF)
            message = await inbox.get()
        for task in workers:
            task.cancel()
        await asyncio.wait(workers, timeout=2.0)
    loop.remove_reader(conn.fileno())


def _retries(client: Any, spec: AioSpec) -> dict[str, Any]:
    """The retry configuration aiobotocore gave the plain client (its default in this version)."""
    if spec.label != "aiobotocore":
        return {}
    retries = getattr(client.meta.config, "retries", None) or {}
    return {"retry_mode": str(retries.get("mode", "legacy")), "total_max_attempts": retries.get("total_max_attempts")}


def _credentials() -> tuple[str, str]:
    from ..testing.tables import TEST_CREDENTIALS

    return TEST_CREDENTIALS["aws_access_key_id"], TEST_CREDENTIALS["aws_secret_access_key"]


def _plain_opener(spec: AioSpec) -> Opener:
    """Plain aiobotocore: its default retry config, aiohttp's connector defaults (its DNS cache on),
    names resolved by :class:`UncachedAioResolver` against the drill's DNS server."""
    async def open_client(stack: AsyncExitStack) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        session = get_session()
        session.register("before-send.dynamodb", _tag_request)
        resolver = uncached_aio_resolver([spec.dns_host], spec.dns_port, timeout=1.0)
        config = AioConfig(max_pool_connections=spec.cfg.threads, connector_args={"resolver": resolver})
        key, secret = _credentials()
        return await stack.enter_async_context(session.create_client(
            "dynamodb", region_name=PRIMARY, endpoint_url=spec.urls[PRIMARY], config=config, aws_access_key_id=key,
            aws_secret_access_key=secret))

    return open_client


def _resilient_opener(spec: AioSpec) -> Opener:
    """``resilient_aws.aio.Session``: the policy of the drill's thread resilient_aws client."""
    async def open_client(stack: AsyncExitStack) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        # imported by name: a type check of the drill where aiohttp is not installed (.venv) must not
        # follow resilient_aws.aio into aiohttp
        aio = importlib.import_module("resilient_aws.aio")
        session = get_session()
        session.register("before-send.dynamodb", _tag_request)
        key, secret = _credentials()
        resilient = aio.Session(region_name=PRIMARY, failover_regions=[SECONDARY], policy=spec.policy,
                                aio_session=session, aws_access_key_id=key, aws_secret_access_key=secret)
        stack.callback(resilient.close)
        return await stack.enter_async_context(resilient.create_client(
            "dynamodb", endpoint_urls=spec.urls, config=AioConfig(max_pool_connections=spec.cfg.threads)))

    return open_client


# -- the baseline's resolver ----------------------------------------------------------------------
class UncachedAioResolver:
    """An aiohttp resolver asking given nameservers on every call, A then AAAA, with no cache:
    ``getaddrinfo`` of a stock process, aimed at the drill's DNS server (see the module docstring).
    The lookup is the thread clients' baseline (:class:`~resilient_aws.drill.baseline_dns.UncachedResolver`),
    run in the loop's executor as aiohttp's default ``ThreadedResolver`` runs ``getaddrinfo``. Any failure
    (empty answer, NXDOMAIN, SERVFAIL, timeout) is an ``OSError``, which aiohttp reports as
    ``ClientConnectorDNSError``. Make one with :func:`uncached_aio_resolver` (an
    ``aiohttp.abc.AbstractResolver`` too, which aiobotocore checks)."""

    def __init__(self, nameservers: list[str], port: int, timeout: float = 2.0) -> None:
        from .baseline_dns import UncachedResolver

        self._lookup = UncachedResolver(nameservers, port, timeout)

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        infos = await asyncio.get_running_loop().run_in_executor(None, self._lookup.resolve, host, port)
        results = [{"hostname": host, "host": sockaddr[0], "port": port, "family": fam, "proto": socket.IPPROTO_TCP,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}
                   for fam, _, _, _, sockaddr in infos if family in (socket.AF_UNSPEC, fam)]
        if results:
            return results
        from ..dns import DnsLookupError

        raise DnsLookupError(host, "empty", f"no {socket.AddressFamily(family).name} records")

    async def close(self) -> None:
        """Nothing to release."""


def uncached_aio_resolver(nameservers: list[str], port: int, timeout: float = 2.0) -> UncachedAioResolver:
    """An :class:`UncachedAioResolver` that is an ``aiohttp.abc.AbstractResolver`` (the class is made
    here, so that importing this module needs no aiohttp)."""
    global _resolver_class
    if _resolver_class is None:
        base = importlib.import_module("aiohttp.abc").AbstractResolver
        _resolver_class = type("UncachedAioResolver", (UncachedAioResolver, base), {"__module__": __name__})
    resolver: UncachedAioResolver = _resolver_class(nameservers, port, timeout)
    return resolver


_resolver_class: type[UncachedAioResolver] | None = None
