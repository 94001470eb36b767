"""Good DNS answers on disk, so a process restarted during a DNS outage still knows where servers are.

Why atomic: a process killed half-way through a write must not leave a truncated file that the next
start cannot read — exactly when it is needed. So the answers go to a temporary file in the same
directory (created ``0o600`` by ``tempfile.mkstemp``), are flushed and fsynced, and ``os.replace``
swaps it in (atomic on POSIX and Windows).

Why forgiving: the file is an optimisation. A missing file is normal; a corrupt or unreadable one is
ignored with one warning (per store), never an exception that stops the client from being created.

Why suspicious: the file decides where this process sends its AWS traffic (and credentials) for hours.
So it is read only if it is what we would have written ourselves — a regular file (not a symlink, a
FIFO or a device), owned by this process's effective uid, not writable by group or others, at most
4 MiB — and it is opened with ``O_NONBLOCK``, so that a FIFO planted at the path cannot hang client
creation. Anything else is refused with one warning and treated as absent; a path we refuse to read
we also refuse to replace, so a misconfiguration stays visible instead of being papered over. The
times in the file are not trusted either: they are validated when read, and :func:`restore` clamps
them to ``max_stale`` from load time when it converts them to the cache's monotonic clock.

Why the time conversion lives here and not in ``cache.py``: the cache keeps monotonic times (they
cannot jump), the file needs wall-clock times (they mean something in the next process). Turning
one into the other is where trust is decided — a skewed or forged time must not stretch the life of
an answer — so it sits with the other trust decisions about the file: :func:`stored` and
:func:`restore` are the only places that cross between the two clocks, and :func:`save_due` says
when an unchanged answer is written again. ``cache.py`` is left with the state machine.

Why merge on write: several processes (workers of one service) often share one path. Each knows only
the names it used; replacing the file with its own snapshot would drop everybody else's. So a write
takes an exclusive ``flock`` on ``<path>.lock``, re-reads the file, keeps per name the newer answer,
keeps the names only others know (until they are past ``max_stale``), and replaces the file. The lock
is held for that read-modify-write only — never around a DNS query — and waited for at most
``lock_timeout`` seconds, because a save may run on a caller's thread. That wait reads ``monotonic``
and polls with ``sleep``, both injectable so a test can run out the clock without waiting for it;
they default to the real ones even when the cache runs on a test clock, because the lock is held by
another process in real time.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only a type here: this module does not need dnspython
    from .resolver import Address

try:
    import fcntl
except ImportError:  # Windows: no flock; writers in one process are still serialised by a thread lock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("resilient_aws.dns")

#: One name as the file holds it: ``{"addresses": [[family, ip], ...], "answered_at": t, "expires_at": t}``
#: (decoded JSON: ``addresses`` is a list of lists on the way out, of ``(family, ip)`` tuples on the way in).
StoredName = dict[str, Any]

FORMAT_VERSION = 1
#: Write a name's answer again at most this often when it did not change: keeps "answered_at" in the
#: file recent (so merges keep it) without a disk write on every refresh of a short TTL.
SAVE_EVERY = 60.0
_MAX_BYTES = 4 << 20  # a bigger file is not ours, and reading it would stall start-up
#: Where ownership means something (POSIX). On Windows st_uid is always 0: only the type is checked.
_CHECK_OWNER = hasattr(os, "geteuid")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))
_LOCK_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW
               | getattr(os, "O_CLOEXEC", 0))


class _Refused(Exception):
    """The path is not something we may trust (type, owner, mode, symlink, directory): neither read
    nor replaced. Not an ``OSError``, so it cannot be mistaken for a transient I/O failure."""


class _Corrupt(ValueError):
    """A file that is safely ours but whose content is unusable: ignored on load, replaced on write."""


class AnswerStore:
    """Load and save ``{host: {"addresses": [[family, ip], ...], "answered_at": t, "expires_at": t}}``.

    Times are wall-clock (``wall_clock()``, ``time.time`` by default): they must mean something in the
    next process. ``max_stale`` lets a write drop names that nobody may serve any more; ``lock_timeout``
    bounds the wait for another process's write, measured with ``monotonic`` and polled with ``sleep``.
    """

    def __init__(self, path: str, *, max_stale: float = math.inf, wall_clock: Callable[[], float] = time.time,
                 lock_timeout: float = 1.0, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.path = os.fspath(path)
        self.max_stale = max_stale
        self.failed = False        # the last load or save failed
        self._wall_clock = wall_clock
        self._lock_timeout = lock_timeout
        self._monotonic = monotonic  # the bounded wait for another writer's lock (see the module docstring)
        self._sleep = sleep
        self._warned = False
        self._lock = threading.Lock()  # one writer at a time in this process; never held by a DNS lookup

    def _warn_once(self, message: str, *args: Any) -> None:
        self.failed = True
        if not self._warned:
            self._warned = True
            logger.warning(message, *args)

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> dict[str, StoredName] | None:
        """The stored answers, or None when there is no usable file (warned once if it is bad or unsafe).

        Entries whose times are not finite, non-negative numbers are dropped (with the one warning);
        the others are returned as stored: clamping them to ``max_stale`` is the caller's job, because
        it needs the caller's monotonic clock.
        """
        try:
            found = self._read()
        except _Refused as e:
            self._warn_once("refusing DNS cache file %s (%s); starting without it", self.path, e)
            return None
        except _Corrupt as e:
            self._warn_once("ignoring corrupt DNS cache file %s (%s)", self.path, e)
            return None
        except OSError as e:  # a read error on a file that passed every check
            self._warn_once("cannot read DNS cache file %s (%s); starting without it", self.path, e)
            return None
        if found is None:
            return None
        names, dropped = found
        if dropped:
            self._warn_once("ignoring %d entr%s with invalid times in DNS cache file %s",
                            dropped, "y" if dropped == 1 else "ies", self.path)
        return names

    def _read(self) -> tuple[dict[str, StoredName], int] | None:
        """(entries, number dropped for bad times), or None when there is no file.

        Raises ``_Refused`` for a path that is not a safe regular file of ours, ``_Corrupt`` for bad
        content. The checks run on the open descriptor (``fstat``), so the file cannot be swapped
        between the check and the read.
        """
        fd = _open(self.path, _READ_FLAGS, "the file")
        if fd is None:
            return None
        try:
            st = os.fstat(fd)
            _check_safe(st, "the file")
            if st.st_size > _MAX_BYTES:
                raise _Corrupt(f"larger than {_MAX_BYTES >> 20} MiB")
            raw = _read_at_most(fd, _MAX_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > _MAX_BYTES:  # grew after fstat
            raise _Corrupt(f"larger than {_MAX_BYTES >> 20} MiB")
        return _parse(raw)

    # -- saving ---------------------------------------------------------------------------------
    def save(self, names: dict[str, StoredName]) -> bool:
        """Merge ``names`` into the file (see the module docstring). False (warned once) when it
        cannot be written or the path is refused."""
        with self._lock:
            try:
                self._check_directory()
                with self._file_lock():
                    try:
                        found = self._read()
                    except _Corrupt:
                        found = None  # ours, but unusable: our answers replace it
                    payload = _dump(self._merge(names, found[0] if found is not None else {}))
                    if len(payload) > _MAX_BYTES:  # keep the file loadable: the names we vouch for first
                        payload = _dump(names)
                    self._replace(payload)
            except _Refused as e:
                self._warn_once("not writing DNS cache file %s (%s)", self.path, e)
                return False
            except OSError as e:
                self._warn_once("cannot write DNS cache file %s (%s)", self.path, e)
                return False
            self.failed = False
            return True

    def _merge(self, ours: dict[str, StoredName], theirs: dict[str, StoredName]) -> dict[str, StoredName]:
        """Per name the newer answer (``answered_at``; ours on a tie); names only in the file are kept
        until nobody may serve them (``expires_at + max_stale``). A file time from the future (a
        writer whose clock ran ahead) counts as "now", and is written back so, so that it does not win
        every later merge."""
        wall = self._wall_clock()
        merged: dict[str, StoredName] = {}
        for host, item in theirs.items():
            if item["expires_at"] + self.max_stale <= wall:
                continue
            merged[host] = {"addresses": [list(a) for a in item["addresses"]],
                            "answered_at": min(item["answered_at"], wall), "expires_at": item["expires_at"]}
        for host, item in ours.items():
            other = merged.get(host)
            if other is None or item["answered_at"] >= other["answered_at"]:
                merged[host] = item
        return merged

    def _replace(self, payload: str) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".dns-cache-", suffix=".tmp", dir=directory)  # mode 0o600
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            tmp = None
            _fsync_directory(directory)
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _check_directory(self) -> None:
        """Refuse a directory where someone else could swap our files: owned by another user (root
        excepted), or writable by group/others without the sticky bit (``/tmp`` itself is fine)."""
        if not _CHECK_OWNER:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        st = os.stat(directory)
        if st.st_uid not in (os.geteuid(), 0):
            raise _Refused(f"directory {directory} is owned by uid {st.st_uid}")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise _Refused(f"directory {directory} is writable by group or others "
                           f"(mode {stat.S_IMODE(st.st_mode):o}, no sticky bit)")

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Exclusive ``flock`` on ``<path>.lock`` (a separate file: the data file itself is replaced by
        rename, so a lock on it would lock a file that is no longer there). Kept after use: deleting
        it would let two writers hold locks on two different lock files."""
        if fcntl is None:
            yield
            return
        lock_path = f"{self.path}.lock"
        fd = _open(lock_path, _LOCK_FLAGS, "its lock file", 0o600)
        if fd is None:  # O_CREAT: only if a directory component vanished
            raise FileNotFoundError(errno.ENOENT, "directory vanished", lock_path)
        try:
            _check_safe(os.fstat(fd), "its lock file")
            deadline = self._monotonic() + self._lock_timeout
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._monotonic() >= deadline:
                        raise TimeoutError(errno.ETIMEDOUT, f"{lock_path} stayed locked by another writer "
                                                            f"for {self._lock_timeout:g} s") from None
                    self._sleep(delay)
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


# -- between the cache's clock and the file's --------------------------------------------------------
def stored(addresses: Sequence[Address], answered_at: float, expires: float, now: float, wall: float) -> StoredName:
    """One name as the file holds it. ``expires`` and ``now`` are the cache's monotonic times, ``wall``
    the wall clock at ``now``: the expiry is written as a wall-clock time, the only kind another process
    can read."""
    return {"addresses": [[family, ip] for family, ip in addresses], "answered_at": answered_at,
            "expires_at": wall + (expires - now)}


@dataclass(frozen=True)
class Restored:
    """One loaded name as the cache may use it: ``expires`` and ``stale_until`` on the cache's
    monotonic clock, ``answered_at`` on the wall clock (never later than the load)."""

    addresses: tuple[Address, ...]
    expires: float
    stale_until: float
    answered_at: float


def restore(loaded: Mapping[str, StoredName], now: float, wall: float, max_stale: float) -> dict[str, Restored]:
    """Convert what :meth:`AnswerStore.load` returned to the cache's clock, trusting none of its times.

    The stored times are a hint, not a promise: a forged or skewed ``expires_at``, or this process's
    wall clock being behind the writer's, must not stretch the life of an answer, so each one is
    served at most ``max_stale`` from ``now``. Nor is it fresh: it is already expired, so its first use
    looks the name up again. Names no one may serve any more are left out. "Answered in the future"
    (a writer whose clock ran ahead) becomes "answered now", or it would put off :func:`save_due`.
    """
    out: dict[str, Restored] = {}
    for host, item in loaded.items():
        expires = min(now + (item["expires_at"] - wall), now)
        stale_until = expires + max_stale
        if not stale_until > now:  # "not >": a NaN is dropped too
            continue
        out[host] = Restored(tuple(item["addresses"]), expires, stale_until, min(item["answered_at"], wall))
    return out


def save_due(changed: bool, answered_at: float, saved_at: float) -> bool:
    """Whether a new good answer should be written: at once when the addresses changed, else at most
    every :data:`SAVE_EVERY` seconds (wall clock, like both times)."""
    return changed or answered_at - saved_at >= SAVE_EVERY


def _open(path: str, flags: int, what: str, mode: int = 0o600) -> int | None:
    """``os.open``, None when the path does not exist, ``_Refused`` for a symlink (``O_NOFOLLOW``) or
    anything else that cannot be opened (we cannot vouch for what we cannot read)."""
    try:
        return os.open(path, flags, mode)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise _Refused(f"{what} is a symbolic link") from None
        raise _Refused(f"cannot open {what}: {e.strerror or e}") from None


def _check_safe(st: os.stat_result, what: str) -> None:
    """Only a regular file that this process's user alone can write is trusted."""
    if not stat.S_ISREG(st.st_mode):
        raise _Refused(f"{what} is not a regular file ({_kind(st.st_mode)})")
    if not _CHECK_OWNER:
        return
    euid = os.geteuid()
    if st.st_uid != euid:
        raise _Refused(f"{what} is owned by uid {st.st_uid}, not by this process's uid {euid}")
    if st.st_mode & 0o022:
        raise _Refused(f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return f"mode {mode:o}"


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[dict[str, StoredName], int]:
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError("unknown format")
        names = data["names"]
        if not isinstance(names, dict):
            raise ValueError("bad 'names'")
        out: dict[str, StoredName] = {}
        dropped = 0
        for host, item in names.items():
            addresses = tuple(_address(a) for a in item["addresses"])
            if not isinstance(host, str) or not addresses:
                raise ValueError(f"bad entry {host!r}")
            answered_at, expires_at = _time(item.get("answered_at")), _time(item.get("expires_at"))
            if answered_at is None or expires_at is None:
                dropped += 1
                continue
            out[host] = {"addresses": addresses, "answered_at": answered_at, "expires_at": expires_at}
        return out, dropped
    # Whatever the bytes are, only _Corrupt leaves: OSError from inet_pton, OverflowError from int(inf),
    # RecursionError from "[[[[...", AttributeError/TypeError from entries of the wrong type.
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError, OSError) as e:
        raise _Corrupt(str(e)) from None


def _time(value: Any) -> float | None:
    """A stored wall-clock time, or None unless it is a finite, non-negative number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # a JSON integer with hundreds of digits
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _address(item: Any) -> tuple[int, str]:
    family, ip = item
    family = int(family)
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"bad address family {family}")
    socket.inet_pton(family, ip)  # raises OSError on a bad address
    return family, ip


def _dump(names: dict[str, StoredName]) -> str:
    return json.dumps({"version": FORMAT_VERSION, "names": names}, separators=(",", ":"), sort_keys=True)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); best effort, and impossible on Windows."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["FORMAT_VERSION", "SAVE_EVERY", "AnswerStore", "Restored", "restore", "save_due", "stored"]
