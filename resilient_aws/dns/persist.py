"""Good DNS answers on disk, so a process restarted during a DNS outage still knows where servers are.

Why atomic: a process killed half-way through a write must not leave a truncated file that the next
start cannot read — exactly when it is needed. So the answers go to a temporary file in the same
directory, are flushed and fsynced, and ``os.replace`` swaps it in (atomic on POSIX and Windows).

Why forgiving: the file is an optimisation. A missing file is normal; a corrupt or unreadable one is
ignored with one warning (per store), never an exception that stops the client from being created.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
from typing import Any

logger = logging.getLogger("resilient_aws.dns")

FORMAT_VERSION = 1
_MAX_BYTES = 4 << 20  # a bigger file is not ours


class AnswerStore:
    """Load and save ``{host: {"addresses": [[family, ip], ...], "answered_at": t, "expires_at": t}}``.

    Times are wall-clock (``time.time()``): they must mean something in the next process.
    """

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)
        self.failed = False        # the last load or save failed
        self._warned = False
        self._lock = threading.Lock()  # one writer at a time; never held by a DNS lookup

    def _warn_once(self, message: str, *args: Any) -> None:
        self.failed = True
        if not self._warned:
            self._warned = True
            logger.warning(message, *args)

    def load(self) -> dict[str, dict] | None:
        """The stored answers, or None when there is no usable file (warned once if it is bad)."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(_MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn_once("resilient_aws: cannot read DNS cache file %s (%s); starting without it", self.path, e)
            return None
        try:
            if len(raw) > _MAX_BYTES:
                raise ValueError("file too large")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
                raise ValueError("unknown format")
            names = data["names"]
            if not isinstance(names, dict):
                raise ValueError("bad 'names'")
            out: dict[str, dict] = {}
            for host, item in names.items():
                addresses = tuple(_address(a) for a in item["addresses"])
                if not isinstance(host, str) or not addresses:
                    raise ValueError(f"bad entry {host!r}")
                out[host] = {"addresses": addresses, "answered_at": float(item["answered_at"]),
                             "expires_at": float(item["expires_at"])}
            return out
        except (ValueError, KeyError, TypeError, OSError) as e:  # OSError: inet_pton
            self._warn_once("resilient_aws: ignoring corrupt DNS cache file %s (%s)", self.path, e)
            return None

    def save(self, names: dict[str, dict]) -> bool:
        """Write ``names`` atomically. False (warned once) when it cannot be written."""
        payload = json.dumps({"version": FORMAT_VERSION, "names": names}, separators=(",", ":"), sort_keys=True)
        directory = os.path.dirname(os.path.abspath(self.path))
        with self._lock:
            tmp = None
            try:
                fd, tmp = tempfile.mkstemp(prefix=".dns-cache-", suffix=".tmp", dir=directory)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(payload)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                tmp = None
                self.failed = False
                return True
            except OSError as e:
                self._warn_once("resilient_aws: cannot write DNS cache file %s (%s)", self.path, e)
                return False
            finally:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


def _address(item: Any) -> tuple[int, str]:
    family, ip = item
    family = int(family)
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"bad address family {family}")
    socket.inet_pton(family, ip)  # raises OSError on a bad address
    return family, ip


__all__ = ["FORMAT_VERSION", "AnswerStore"]
