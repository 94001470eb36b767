"""A real ``redis-server`` on loopback, for tests, drills and benchmarks of shared state.

Why a real one: the fleet's guarantees are about Redis itself (its scripts, its pub/sub, what happens
when it is killed, stalled or restarted, how many commands a workload costs it), so the proof runs
against the server users run. This module starts Debian's ``redis-server`` (or any on ``PATH``) with
no persistence on a free loopback port and lets a test kill it, stall it (SIGSTOP), restart it on the
same port, and read its command counters (``INFO commandstats``).

``RedisServerUnavailable`` is raised when no ``redis-server`` can be started: test suites turn it
into a skip with its message (CI installs the package, so it runs there).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

from .net import check_loopback, free_port

__all__ = ["LoopbackRedisServer", "RedisServerUnavailable"]


class RedisServerUnavailable(RuntimeError):
    """No redis-server binary, or it would not start."""


class LoopbackRedisServer:
    """``with LoopbackRedisServer() as server: RedisState(server.url)``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, binary: str | None = None,
                 start_timeout: float = 10.0) -> None:
        check_loopback(host, "the test Redis server")
        found = binary or shutil.which("redis-server") or ("/usr/bin/redis-server"
                                                            if os.path.exists("/usr/bin/redis-server") else None)
        if found is None:
            raise RedisServerUnavailable("redis-server is not installed (Debian: apt-get install redis-server)")
        self.binary = found
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout = start_timeout
        self._dir = tempfile.mkdtemp(prefix="resilient-redis-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> LoopbackRedisServer:
        if self._proc is not None and self._proc.poll() is None:
            return self
        args = [self.binary, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", self._dir, "--protected-mode", "yes", "--loglevel", "warning", "--logfile", ""]
        try:
            self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            raise RedisServerUnavailable(f"cannot run {self.binary}: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
                raise RedisServerUnavailable(f"redis-server exited at start ({self._proc.returncode}): {err[-500:]}")
            if self._answers():
                self._stopped = False
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisServerUnavailable(f"redis-server did not answer on {self.host}:{self.port} "
                                     f"within {self.start_timeout} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the way a crashed or OOM-killed Redis goes (connections reset, nothing flushed)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if self._stopped:
                proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)
        self._stopped = False

    def stall(self) -> None:
        """SIGSTOP: Redis accepts connections (the kernel does) but answers nothing: a slow Redis."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)
            self._stopped = True

    def resume(self) -> None:
        if self._proc is not None and self._stopped:
            self._proc.send_signal(signal.SIGCONT)
            self._stopped = False

    def restart(self) -> None:
        """Kill, then start again on the same port, empty (as a Redis without persistence comes back)."""
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LoopbackRedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it saw -----------------------------------------------------------------------------
    def command(self, *args: str) -> Any:
        """One command through a fresh connection (no client library needed)."""
        import redis

        client = redis.Redis(host=self.host, port=self.port, socket_timeout=5, decode_responses=True)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def commandstats(self) -> dict[str, int]:
        """Calls per command since start or :meth:`reset_stats` (``INFO commandstats``), e.g.
        ``{"evalsha": 12, "publish": 3, "hset": 9}``; commands run by scripts are counted too."""
        info = self.command("INFO", "commandstats")
        out: dict[str, int] = {}
        for name, stats in info.items():
            if name.startswith("cmdstat_") and isinstance(stats, dict):
                out[name[len("cmdstat_"):]] = int(stats.get("calls", 0))
        return out

    def reset_stats(self) -> None:
        self.command("CONFIG", "RESETSTAT")
