"""Persistence: good answers survive a restart during an outage; a bad file never crashes."""

from __future__ import annotations

import json
import logging
import os

import pytest
from dns_helpers import NAME, ips

pytestmark = pytest.mark.integration


def test_answers_round_trip_through_the_file_into_a_restart_during_an_outage(dns_server, make_cache, tmp_path):
    path = str(tmp_path / "dns.json")
    dns_server.set(NAME, a=["127.0.0.5"], ttl=30)
    first = make_cache(persist_path=path)
    first.resolve(NAME, 443)
    assert json.loads((tmp_path / "dns.json").read_text())["names"][NAME]["addresses"] == [[2, "127.0.0.5"]]
    first.close()

    dns_server.set_mode(NAME, "empty")  # the outage, and a restart during it
    second = make_cache(persist_path=path)
    assert second.stats()["persisted_loads"] == 1
    assert ips(second.resolve(NAME, 443)) == ["127.0.0.5"]
    assert second.stats()["stale_episodes"] == 1


def test_a_loaded_answer_is_checked_again_on_first_use(dns_server, make_cache, tmp_path):
    path = str(tmp_path / "dns.json")
    dns_server.set(NAME, a=["127.0.0.5"], ttl=30)
    make_cache(persist_path=path).resolve(NAME, 443)
    dns_server.set(NAME, a=["127.0.0.6"], ttl=30)  # moved while we were down
    assert ips(make_cache(persist_path=path).resolve(NAME, 443)) == ["127.0.0.6"]


def test_answers_older_than_max_stale_are_not_loaded(dns_server, make_cache, tmp_path):
    path = tmp_path / "dns.json"
    path.write_text(json.dumps({"version": 1, "names": {NAME: {
        "addresses": [[2, "127.0.0.5"]], "answered_at": 1000.0, "expires_at": 1005.0}}}))
    cache = make_cache(persist_path=str(path), max_stale=3600)
    assert cache.stats()["persisted_loads"] == 0


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'{"version": 99, "names": {}}',
                                     b'{"version": 1, "names": {"x": {"addresses": [[2, "nope"]]}}}', b""])
def test_a_corrupt_file_is_ignored_with_one_warning(make_cache, tmp_path, caplog, content):
    path = tmp_path / "dns.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupt" in warnings[0].getMessage()
    assert cache.stats()["persisted_loads"] == 0
    assert cache.stats()["persist_errors"] == 1


def test_an_unreadable_path_is_ignored_with_one_warning(dns_server, make_cache, tmp_path, caplog):
    path = tmp_path / "a-directory"
    path.mkdir()
    dns_server.set(NAME, a=["127.0.0.5"], ttl=30)
    with caplog.at_level(logging.WARNING, logger="resilient_aws"):
        cache = make_cache(persist_path=str(path))
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]  # the write fails too: still no crash
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_writes_are_atomic_and_leave_no_temporary_file(dns_server, make_cache, tmp_path):
    path = tmp_path / "dns.json"
    dns_server.set(NAME, a=["127.0.0.5"], ttl=30)
    dns_server.set("b." + NAME, a=["127.0.0.6"], ttl=30)
    cache = make_cache(persist_path=str(path))
    cache.resolve(NAME, 443)
    inode = os.stat(path).st_ino
    cache.resolve("b." + NAME, 443)
    assert os.stat(path).st_ino != inode  # replaced by rename, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["dns.json", "hosts"]
    assert set(json.loads(path.read_text())["names"]) == {NAME, "b." + NAME}


def test_hosts_file_and_literal_answers_are_not_persisted(make_cache, tmp_path):
    path = tmp_path / "dns.json"
    cache = make_cache(persist_path=str(path))
    cache.resolve("localhost", 443)
    cache.resolve("127.0.0.1", 443)
    cache.close()
    assert json.loads(path.read_text())["names"] == {}
