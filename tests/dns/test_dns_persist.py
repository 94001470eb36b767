"""Persistence: good answers survive a restart during an outage; a bad file never crashes, is never
trusted blindly (owner, mode, type, size, times) and two processes sharing it keep each other's names.

Unit tests: the caches ask ``support.dns.FakeResolver`` and run on the ``clock`` fixture (conftest),
so ``max_stale`` passes without sleeping; the files are real, in ``tmp_path``. The same round trip
through a real server and a restart is in ``test_dns_bind.py``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import stat
import threading
import time

import pytest
from support.dns import NAME, FakeClock, ips
from support.threads import run_in_threads

import resilient_aws
from resilient_aws.dns import AnswerStore, DnsCache, DnsLookupError, HostsFile, Resolver
from resilient_aws.policy import DnsPolicy

B_NAME = "b." + NAME
C_NAME = "c." + NAME
YEAR = 365 * 86400.0


def test_answers_round_trip_through_the_file_into_a_restart_during_an_outage(resolver, make_cache, tmp_path):
    path = str(tmp_path / "dns.json")
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    first = make_cache(persist_path=path)
    first.resolve(NAME, 443)
    assert json.loads((tmp_path / "dns.json").read_text())["names"][NAME]["addresses"] == [[2, "127.0.0.5"]]
    first.close()

    resolver.set_mode(NAME, "empty")  # the outage, and a restart during it
    second = make_cache(persist_path=path)
    assert second.stats()["persisted_loads"] == 1
    assert ips(second.resolve(NAME, 443)) == ["127.0.0.5"]
    assert second.stats()["stale_episodes"] == 1


def test_a_loaded_answer_is_checked_again_on_first_use(resolver, make_cache, tmp_path):
    path = str(tmp_path / "dns.json")
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    make_cache(persist_path=path).resolve(NAME, 443)
    resolver.set(NAME, ["127.0.0.6"], ttl=30)  # moved while we were down
    assert ips(make_cache(persist_path=path).resolve(NAME, 443)) == ["127.0.0.6"]


def test_answers_older_than_max_stale_are_not_loaded(make_cache, tmp_path):
    path = tmp_path / "dns.json"
    path.write_text(json.dumps({"version": 1, "names": {NAME: {
        "addresses": [[2, "127.0.0.5"]], "answered_at": 1000.0, "expires_at": 1005.0}}}))
    cache = make_cache(persist_path=str(path), max_stale=3600)
    assert cache.stats()["persisted_loads"] == 0


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'{"version": 99, "names": {}}',
                                     b'{"version": 1, "names": {"x": {"addresses": [[2, "nope"]]}}}', b"",
                                     b"[" * 100_000,  # nested too deep for the parser
                                     b'{"version": 1, "names": {"x": {"addresses": [[Infinity, "127.0.0.5"]]}}}',
                                     b'{"version": 1, "names": {"x": ["not", "a", "dict"]}}'])
def test_a_corrupt_file_is_ignored_with_one_warning(make_cache, tmp_path, caplog, content):
    path = tmp_path / "dns.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupt" in warnings[0].getMessage()
    assert cache.stats()["persisted_loads"] == 0
    assert cache.stats()["persist_errors"] == 1


def test_an_unreadable_path_is_ignored_with_one_warning(resolver, make_cache, tmp_path, caplog):
    path = tmp_path / "a-directory"
    path.mkdir()
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]  # the write fails too: still no crash
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_writes_are_atomic_and_leave_no_temporary_file(resolver, make_cache, tmp_path):
    path = tmp_path / "dns.json"
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    resolver.set(B_NAME, ["127.0.0.6"], ttl=30)
    cache = make_cache(persist_path=str(path))
    cache.resolve(NAME, 443)
    inode = os.stat(path).st_ino
    cache.resolve(B_NAME, 443)
    assert os.stat(path).st_ino != inode  # replaced by rename, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["dns.json", "dns.json.lock"]  # the lock file stays
    assert set(json.loads(path.read_text())["names"]) == {NAME, B_NAME}


def test_hosts_file_and_literal_answers_are_not_persisted(tmp_path):
    path = tmp_path / "dns.json"
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    policy = DnsPolicy(nameservers=["127.0.0.1"], port=9, persist_path=str(path))  # never asked: no query
    cache = DnsCache(policy, resolver=Resolver(policy, HostsFile(str(hosts))))  # the real resolver
    cache.resolve("localhost", 443)
    cache.resolve("127.0.0.1", 443)
    cache.close()
    assert json.loads(path.read_text())["names"] == {}


# -- helpers for the hardening tests -----------------------------------------------------------------------
def _entry(ip: str, answered_at: object, expires_at: object) -> dict:
    return {"addresses": [[2, ip]], "answered_at": answered_at, "expires_at": expires_at}


def _write(path, names: dict, mode: int = 0o600) -> None:
    """A cache file as another process of ours would have left it (``mode`` applied after umask)."""
    path.write_text(json.dumps({"version": 1, "names": names}))
    os.chmod(path, mode)


def _live_file(path, ip: str = "127.0.0.5", mode: int = 0o600) -> None:
    now = time.time()
    _write(path, {NAME: _entry(ip, now, now + 30)}, mode)


def _names(path) -> dict:
    return json.loads(path.read_text())["names"]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _hold_lock(path) -> int:
    """Take the writers' lock as another process would; closing the fd releases it."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


# -- refusing files that are not safely ours ---------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666], ids=["group-writable", "others-writable", "both"])
def test_a_file_writable_by_group_or_others_is_refused_with_one_warning(make_cache, tmp_path, caplog, mode):
    path = tmp_path / "dns.json"
    _live_file(path, mode=mode)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "writable by group or others" in warnings[0]
    assert cache.stats()["persisted_loads"] == 0
    assert cache.addresses(NAME) == []


@needs_root
def test_a_file_owned_by_another_user_is_refused(make_cache, tmp_path, caplog):
    path = tmp_path / "dns.json"
    _live_file(path)
    os.chown(path, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "owned by uid 65534" in warnings[0]
    assert cache.stats()["persisted_loads"] == 0


@needs_root
def test_a_file_owned_by_another_user_is_never_overwritten(resolver, make_cache, tmp_path, caplog):
    path = tmp_path / "dns.json"
    _live_file(path, ip="127.0.0.9")
    os.chown(path, 65534, 65534)
    before = path.read_bytes()
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
        cache.close()
    assert path.read_bytes() == before and os.stat(path).st_uid == 65534
    assert len(_warnings(caplog)) == 1  # the refused load; the refused writes say nothing more


def test_a_fifo_at_the_path_does_not_hang_client_creation(tmp_path, caplog):
    path = tmp_path / "dns.json"
    os.mkfifo(path, 0o600)
    dns = resilient_aws.DnsPolicy(nameservers=["127.0.0.1"], port=9, timeout=0.5,  # never asked: no query
                                  persist_path=str(path))
    session = resilient_aws.Session(region_name="us-east-1", policy=resilient_aws.Policy(dns=dns),
                                    aws_access_key_id="testing", aws_secret_access_key="testing")
    made: list = []
    creating = threading.Thread(target=lambda: made.append(session.client(
        "dynamodb", endpoint_urls={"us-east-1": "http://127.0.0.1:9"})), daemon=True)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        creating.start()
        try:
            creating.join(timeout=20)  # botocore loads its models: seconds at worst, never a hang
            assert not creating.is_alive(), "client creation hangs on a FIFO at persist_path"
        finally:
            if creating.is_alive():  # unblock a reader stuck in open() so the thread can end
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "not a regular file" in warnings[0]
    assert made[0].stats()["dns"]["persisted_loads"] == 0


def test_a_fifo_at_the_path_does_not_hang_a_write(tmp_path, caplog):
    path = tmp_path / "dns.json"
    os.mkfifo(path, 0o600)
    now = time.time()
    result: list[bool] = []
    writing = threading.Thread(target=lambda: result.append(AnswerStore(str(path)).save(
        {NAME: _entry("127.0.0.5", now, now + 30)})), daemon=True)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        writing.start()
        try:
            writing.join(timeout=5)
            assert not writing.is_alive(), "a write hangs on a FIFO at persist_path"
        finally:
            if writing.is_alive():
                os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    assert result == [False]
    assert stat.S_ISFIFO(os.lstat(path).st_mode)  # left alone, not replaced
    assert len(_warnings(caplog)) == 1


def test_a_symlink_is_refused(make_cache, tmp_path, caplog):
    target = tmp_path / "elsewhere.json"
    _live_file(target)
    path = tmp_path / "dns.json"
    path.symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "symbolic link" in warnings[0]
    assert cache.stats()["persisted_loads"] == 0


def test_a_symlink_at_the_path_is_never_written_through_or_replaced(resolver, make_cache, tmp_path):
    target = tmp_path / "elsewhere.json"
    _live_file(target, ip="127.0.0.9")
    before = target.read_bytes()
    path = tmp_path / "dns.json"
    path.symlink_to(target)
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    cache = make_cache(persist_path=str(path))
    cache.resolve(NAME, 443)
    cache.close()
    assert path.is_symlink() and target.read_bytes() == before


def test_a_file_larger_than_4_mib_is_ignored_with_one_warning(make_cache, tmp_path, caplog):
    path = tmp_path / "dns.json"
    with open(path, "wb") as f:
        f.truncate(5 << 20)  # sparse: instant to make
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "large" in warnings[0]
    assert cache.stats()["persisted_loads"] == 0


def test_a_directory_writable_by_others_is_not_written_to(resolver, make_cache, tmp_path, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may swap files here
    path = shared / "dns.json"
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
        cache.resolve(NAME, 443)
        cache.close()
    assert os.listdir(shared) == []
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(shared) in warnings[0] and "directory" in warnings[0]


def test_a_sticky_shared_directory_like_tmp_is_written_to(resolver, make_cache, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # others may add files but not replace ours
    path = shared / "dns.json"
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    make_cache(persist_path=str(path)).resolve(NAME, 443)
    assert set(_names(path)) == {NAME}


def test_the_file_and_its_lock_are_private_to_their_owner(resolver, make_cache, tmp_path):
    path = tmp_path / "dns.json"
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    make_cache(persist_path=str(path)).resolve(NAME, 443)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(f"{path}.lock").st_mode) == 0o600


def test_a_corrupt_file_is_replaced_by_the_next_write(resolver, make_cache, tmp_path):
    path = tmp_path / "dns.json"
    path.write_bytes(b"{not json")
    resolver.set(NAME, ["127.0.0.5"], ttl=30)
    make_cache(persist_path=str(path)).resolve(NAME, 443)
    assert set(_names(path)) == {NAME}


# -- never past max_stale from now ---------------------------------------------------------------------------
def test_a_far_future_expiry_is_clamped_to_max_stale_from_now(resolver, make_cache, tmp_path, clock):
    path = tmp_path / "dns.json"
    now = time.time()
    _write(path, {NAME: _entry("127.0.0.5", now, now + 10 * YEAR)})  # forged, or a writer's clock far ahead
    resolver.set_mode(NAME, "empty")  # the outage: only the loaded answer can be served
    cache = make_cache(persist_path=str(path), max_stale=60)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    clock.advance(61)
    with pytest.raises(DnsLookupError):
        cache.resolve(NAME, 443)


def test_a_wall_clock_that_was_behind_cannot_extend_max_stale(resolver, make_cache, tmp_path, clock):
    path = tmp_path / "dns.json"
    _live_file(path)  # written with a correct clock: expires in 30 s
    resolver.set_mode(NAME, "empty")
    # This process's clock is a year behind (no NTP yet): the stored expiry looks a year ahead.
    cache = make_cache(max_stale=60, persist_path=str(path), wall_clock=lambda: time.time() - YEAR)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    clock.advance(61)
    with pytest.raises(DnsLookupError):
        cache.resolve(NAME, 443)


@pytest.mark.parametrize("field", ["answered_at", "expires_at"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, 10**400, "soon", None, True],
                         ids=["negative", "nan", "inf", "too-big-for-a-float", "string", "null", "bool"])
def test_an_entry_with_invalid_times_is_dropped_with_one_warning(make_cache, tmp_path, caplog, field, bad):
    path = tmp_path / "dns.json"
    now = time.time()
    broken = _entry("127.0.0.6", now, now + 30)
    broken[field] = bad
    _write(path, {NAME: _entry("127.0.0.5", now, now + 30), B_NAME: broken})
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
    assert cache.addresses(NAME) == ["127.0.0.5"]  # the good entry next to it still loads
    assert cache.addresses(B_NAME) == []
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "invalid times" in warnings[0]


# -- merge on write ------------------------------------------------------------------------------------------
def test_two_writers_keep_each_others_names(resolver, make_cache, tmp_path):
    path = tmp_path / "dns.json"
    for name, ip in ((NAME, "127.0.0.5"), (B_NAME, "127.0.0.6"), (C_NAME, "127.0.0.7")):
        resolver.set(name, [ip], ttl=30)
    first = make_cache(persist_path=str(path))
    second = make_cache(persist_path=str(path))  # another process: it never saw the first one's names
    first.resolve(NAME, 443)
    second.resolve(B_NAME, 443)
    first.resolve(C_NAME, 443)
    assert set(_names(path)) == {NAME, B_NAME, C_NAME}


def test_concurrent_writers_keep_every_name(tmp_path):
    path = tmp_path / "dns.json"
    now = time.time()
    stores = [AnswerStore(str(path)), AnswerStore(str(path))]  # separate lock fds: they exclude each other
    names = (NAME, B_NAME)
    results: list[list[bool]] = [[], []]

    def write(i: int) -> None:
        for n in range(30):
            results[i].append(stores[i].save({names[i]: _entry("127.0.0.5", now + n, now + 30)}))

    run_in_threads(2, write, timeout=30)
    assert results == [[True] * 30, [True] * 30]
    assert set(_names(path)) == {NAME, B_NAME}


def test_the_newer_answer_for_a_name_wins_whoever_writes_last(tmp_path):
    path = tmp_path / "dns.json"
    first = AnswerStore(str(path), wall_clock=lambda: 1000.0)
    second = AnswerStore(str(path), wall_clock=lambda: 1000.0)
    second.save({NAME: _entry("127.0.0.6", 900.0, 930.0)})
    first.save({NAME: _entry("127.0.0.5", 800.0, 830.0)})  # older: must not undo the newer answer
    assert _names(path)[NAME]["addresses"] == [[2, "127.0.0.6"]]
    first.save({NAME: _entry("127.0.0.5", 950.0, 980.0)})  # newer: replaces it
    assert _names(path)[NAME]["addresses"] == [[2, "127.0.0.5"]]


def test_a_future_answered_at_in_the_file_does_not_win_every_later_merge(tmp_path):
    path = tmp_path / "dns.json"
    _write(path, {NAME: _entry("127.0.0.6", 1e9, 1e9 + 30)})  # a writer whose clock ran far ahead
    wall = FakeClock(1000.0)
    store = AnswerStore(str(path), wall_clock=wall)
    store.save({NAME: _entry("127.0.0.5", 999.0, 1029.0)})
    assert _names(path)[NAME]["answered_at"] <= 1000.0  # kept, but no longer "from the future"
    wall.advance(10)
    store.save({NAME: _entry("127.0.0.5", 1005.0, 1035.0)})
    assert _names(path)[NAME]["addresses"] == [[2, "127.0.0.5"]]


def test_names_past_max_stale_are_dropped_from_the_file_on_write(tmp_path):
    path = tmp_path / "dns.json"
    _write(path, {B_NAME: _entry("127.0.0.6", 800.0, 900.0),    # stale limit 960: gone
                  C_NAME: _entry("127.0.0.7", 950.0, 980.0)})   # stale limit 1040: kept
    store = AnswerStore(str(path), max_stale=60, wall_clock=lambda: 1000.0)
    store.save({NAME: _entry("127.0.0.5", 990.0, 1020.0)})
    assert set(_names(path)) == {NAME, C_NAME}


def test_a_writer_reads_the_file_again_under_the_lock(tmp_path):
    path = tmp_path / "dns.json"
    now = time.time()
    polling = threading.Event()

    def sleep(seconds: float) -> None:  # the store polls the lock: it found it taken
        polling.set()
        time.sleep(seconds)

    store = AnswerStore(str(path), lock_timeout=10, sleep=sleep)
    lock_fd = _hold_lock(path)
    try:
        writing = threading.Thread(target=store.save, args=({NAME: _entry("127.0.0.5", now, now + 30)},))
        writing.start()
        assert polling.wait(10), "the write did not find the lock taken"
        assert writing.is_alive(), "the write did not wait for the lock"
        _write(path, {B_NAME: _entry("127.0.0.6", now, now + 30)})  # the lock holder's own write
    finally:
        os.close(lock_fd)
    writing.join(timeout=10)
    assert not writing.is_alive()
    assert set(_names(path)) == {NAME, B_NAME}


def test_a_lock_held_too_long_makes_the_write_give_up_with_one_warning(tmp_path, caplog):
    path = tmp_path / "dns.json"
    now = time.time()
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the store's poll: time passes, on the test's clock only
        slept.append(seconds)
        clock.advance(seconds)

    store = AnswerStore(str(path), lock_timeout=1.0, monotonic=clock, sleep=sleep)
    lock_fd = _hold_lock(path)
    try:
        with caplog.at_level(logging.WARNING, logger="resilient_aws"):
            assert store.save({NAME: _entry("127.0.0.5", now, now + 30)}) is False
            assert store.save({NAME: _entry("127.0.0.5", now, now + 30)}) is False
    finally:
        os.close(lock_fd)
    assert not path.exists()
    assert 2 * 1.0 <= sum(slept) < 2 * (1.0 + 0.05)  # each write waited out its 1 s bound, no longer
    assert max(slept) <= 0.05  # polling backs off to at most 50 ms
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "lock" in warnings[0]


def test_a_symlink_at_the_lock_path_stops_the_write_with_one_warning(tmp_path, caplog):
    path = tmp_path / "dns.json"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not a lock")
    (tmp_path / "dns.json.lock").symlink_to(elsewhere)
    now = time.time()
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        assert AnswerStore(str(path)).save({NAME: _entry("127.0.0.5", now, now + 30)}) is False
    assert not path.exists() and elsewhere.read_text() == "not a lock"
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "lock file is a symbolic link" in warnings[0]
