"""A shared store is input like any other: garbage in it is ignored with a WARNING, never acted on,
and never taken for the store being down.

Garbage reaches a process three ways: a published message (anyone can PUBLISH on the channel), a
DNS entry (anyone can write the key), and a script's reply about a key someone corrupted. Each is
checked here through the parsing functions themselves (``view_from``, ``message_from``, ``dns_from``),
through a process's SharedState on the in-memory store, and through RedisState on a real redis-server.
"""

from __future__ import annotations

import json
import logging
import math
import time

import pytest
from support.dns import NAME, FakeResolver
from support.fleet import BREAKER, BUDGET, KEY, Fleet, wait_until

from resilient_aws.breaker import ADMIT, CLOSED, OPEN, CircuitBreaker
from resilient_aws.budget import RetryBudget
from resilient_aws.dns import DnsCache, DnsLookupError
from resilient_aws.fleet.store import (
    MAX_REMAINING,
    Invalid,
    View,
    dns_entry,
    dns_from,
    encode_message,
    message_from,
    view_from,
)
from resilient_aws.policy import DnsPolicy

NS = "fleet-test"
OTHER = "another-fleet"


def message(**fields: object) -> str:
    item = {"ns": NS, "e": KEY, "st": "open", "rem": 1000, "h": "", **fields}
    return json.dumps({k: v for k, v in item.items() if v is not ...})


#: Published messages that must be refused; each says "open" or would open a closed breaker if believed.
GARBAGE_MESSAGES = {
    "another namespace": message(ns=OTHER),
    "no namespace": message(ns=...),
    "not JSON": "open the breaker now",
    "not UTF-8": b"\xff\xfe\x00open",
    "a JSON list": json.dumps(["open", 1000, ""]),
    "no endpoint": message(e=...),
    "an empty endpoint": message(e=""),
    "an endpoint that is not a string": message(e=17),
    "an unknown state": message(st="weird"),
    "no state": message(st=...),
    "a negative remaining time": message(rem=-5),
    "a remaining time over a day": message(rem=int(MAX_REMAINING * 1000) + 1),
    "a NaN remaining time": message(rem=math.nan),
    "an infinite remaining time": message(rem=math.inf),
    "a remaining time as text": message(rem="1000"),
    "a remaining time as a boolean": message(rem=True),
    "a holder that is not a string": message(h=5),
    "a holder too long": message(h="x" * 200),
    "an unknown kind": message(k="reboot"),
    "a floor wait that is negative": message(k="floor", w=-1),
    "a floor wait of NaN": message(k="floor", w=math.nan),
    "a floor wait over a day": message(k="floor", w=int(MAX_REMAINING * 1000) + 1),
    "a floor wait as text": message(k="floor", w="1000"),
    "a floor wait as a boolean": message(k="floor", w=True),
    "a floor message with no wait": message(k="floor"),
    "a pace wait that is negative": message(k="pace", w=-1),
    "a pace wait of infinity": message(k="pace", w=math.inf),
}

#: DNS entries (the JSON a process publishes) that must be refused.
GARBAGE_DNS = {
    "a name, not an IP address": json.dumps({"ns": NS, "a": ["dynamodb.us-east-1.amazonaws.com"]}),
    "not an address at all": json.dumps({"ns": NS, "a": ["not-an-ip"]}),
    "an address that is not a string": json.dumps({"ns": NS, "a": [3232235777]}),
    "one bad address among good ones": json.dumps({"ns": NS, "a": ["10.0.0.1", "10.0.0.300"]}),
    "another namespace": dns_entry(["10.0.0.1"], OTHER),
    "no namespace": json.dumps({"a": ["10.0.0.1"]}),
    "not JSON": "10.0.0.1",
    "no addresses": json.dumps({"ns": NS, "a": []}),
    "addresses that are not a list": json.dumps({"ns": NS, "a": "10.0.0.1"}),
    "too many addresses": json.dumps({"ns": NS, "a": [f"10.0.{i // 250}.{i % 250}" for i in range(65)]}),
}


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "resilient_aws.fleet"]


@pytest.fixture
def fleet_warnings(caplog):
    caplog.set_level(logging.WARNING, logger="resilient_aws.fleet")
    return caplog


# -- the parsing functions --------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    None, "open", ["open", 1000], ["open", 1000, "", "x"], {"st": "open"},
    ["weird", 1000, ""], [b"weird", 1000, b""], ["open", -1, ""], ["open", int(MAX_REMAINING * 1000) + 1, ""],
    ["open", math.nan, ""], ["open", math.inf, ""], ["open", "1000", ""], ["open", True, ""],
    ["open", 1000, 7], ["open", 1000, "h" * 129],
], ids=repr)
def test_view_from_refuses_a_reply_that_is_not_a_breaker_view(raw):
    with pytest.raises(Invalid):
        view_from(raw)


def test_view_from_takes_a_script_reply_in_bytes_and_milliseconds():
    assert view_from([b"probing", 830, b"host:1:ab"]) == View("probing", 0.83, "host:1:ab")


@pytest.mark.parametrize("data", list(GARBAGE_MESSAGES.values()), ids=list(GARBAGE_MESSAGES))
def test_message_from_refuses_garbage(data):
    with pytest.raises(Invalid):
        message_from(data, NS)


def test_message_from_takes_what_a_store_publishes():
    text = encode_message(NS, KEY, View("open", 1.5, ""))
    parsed = message_from(text.encode(), NS)
    assert parsed.key == KEY and parsed.view == View("open", 1.5, "")


@pytest.mark.parametrize("entry", list(GARBAGE_DNS.values()), ids=list(GARBAGE_DNS))
def test_dns_from_refuses_garbage_entries(entry):
    with pytest.raises(Invalid):
        dns_from([entry, 10], NS, 3600.0)


@pytest.mark.parametrize("age", [-1, math.nan, math.inf, "10", True, None], ids=repr)
def test_dns_from_refuses_an_age_that_is_not_a_duration(age):
    with pytest.raises(Invalid):
        dns_from([dns_entry(["10.0.0.1"], NS), age], NS, 3600.0)


@pytest.mark.parametrize("raw", ["x", ["only one"], [1, 2, 3]], ids=repr)
def test_dns_from_refuses_a_reply_that_is_not_entry_and_age(raw):
    with pytest.raises(Invalid):
        dns_from(raw, NS, 3600.0)


def test_dns_from_says_none_for_an_entry_older_than_max_stale_rather_than_invalid():
    assert dns_from([dns_entry(["10.0.0.1"], NS), 3_600_000], NS, 3600.0) is None
    assert dns_from([dns_entry(["10.0.0.1"], NS), 3_599_999], NS, 3600.0) == (["10.0.0.1"], 3599.999)


# -- through a process's SharedState (in-memory store) ------------------------------------------------------
@pytest.mark.parametrize("data", list(GARBAGE_MESSAGES.values()), ids=list(GARBAGE_MESSAGES))
def test_a_garbage_message_is_ignored_with_a_warning_and_never_opens_a_breaker(data, fleet_warnings):
    fleet = Fleet(1, namespace=NS)
    p = fleet[0]
    p.shared.deliver(data)
    assert p.breaker.state == CLOSED
    assert p.shared.counters["invalid"] == 1 and p.shared.counters["messages"] == 0
    assert p.shared.up and p.shared.counters["outages"] == 0
    assert len(warnings(fleet_warnings)) == 1
    assert warnings(fleet_warnings)[0].startswith("ignored invalid shared state")


@pytest.mark.parametrize("data", [message(ns=OTHER, st="closed", rem=0), message(st="closed", rem=-1),
                                  message(st="closed", rem=math.nan), message(st="shut", rem=0)],
                         ids=["another namespace", "negative", "NaN", "unknown state"])
def test_a_garbage_closed_message_never_closes_an_open_breaker(data, fleet_warnings):
    fleet = Fleet(1, namespace=NS)
    p = fleet[0]
    p.fail(4)
    until = p.breaker.open_until
    p.shared.deliver(data)
    assert p.breaker.state == OPEN and p.breaker.open_until == until
    assert p.shared.counters["invalid"] == 1 and p.shared.up


@pytest.mark.parametrize("data", [v for k, v in GARBAGE_MESSAGES.items() if "floor" in k or "pace" in k],
                         ids=[k for k in GARBAGE_MESSAGES if "floor" in k or "pace" in k])
def test_a_garbage_floor_or_pace_message_never_makes_a_process_wait(data):
    fleet = Fleet(1, namespace=NS)
    p = fleet[0]
    p.shared.deliver(data)
    assert p.link._reserve_wait_until == 0.0 and p.link._next_report_at == 0.0
    assert p.shared.counters["invalid"] == 1 and p.shared.up


def test_invalid_data_warns_at_most_once_a_minute(fleet_warnings):
    fleet = Fleet(1, namespace=NS)
    p = fleet[0]
    for data in list(GARBAGE_MESSAGES.values()) * 3:
        p.shared.deliver(data)
    assert len(warnings(fleet_warnings)) == 1
    fleet.advance(60.0)
    p.shared.deliver("still garbage")
    assert len(warnings(fleet_warnings)) == 2
    assert p.shared.counters["invalid"] == 3 * len(GARBAGE_MESSAGES) + 1


def test_a_valid_message_after_garbage_is_still_followed():
    fleet = Fleet(1, namespace=NS)
    p = fleet[0]
    p.shared.deliver("garbage")
    p.shared.deliver(encode_message(NS, KEY, View("open", 1.0, "")))
    assert p.breaker.state == OPEN


@pytest.mark.parametrize("entry", list(GARBAGE_DNS.values()), ids=list(GARBAGE_DNS))
def test_a_garbage_dns_entry_is_ignored_with_a_warning(entry, fleet_warnings):
    fleet = Fleet(1, namespace=NS)
    link = fleet[0].shared.dns(DnsPolicy(nameservers=["127.0.0.1"]))
    fleet.memory.put_raw_dns(NAME, entry, age=5.0, ttl=3600.0)
    assert link.lookup(NAME) is None
    assert fleet[0].shared.counters["invalid"] == 1
    assert fleet[0].shared.up and fleet[0].shared.counters["outages"] == 0
    assert warnings(fleet_warnings)[0].startswith("ignored invalid shared state")


@pytest.mark.parametrize("entry", [GARBAGE_DNS["not an address at all"], GARBAGE_DNS["another namespace"]],
                         ids=["not an IP", "another namespace"])
def test_a_cold_name_is_never_served_a_garbage_dns_entry(entry):
    fleet = Fleet(1, namespace=NS)
    resolver = FakeResolver()
    resolver.set_mode(NAME, "nxdomain")
    policy = DnsPolicy(nameservers=["127.0.0.1"], timeout=0.5, recheck_interval=0.3, min_ttl=0.0)
    cache = DnsCache(policy, resolver=resolver, monotonic=fleet.clock, fleet=fleet[0].shared.dns(policy))
    fleet.memory.put_raw_dns(NAME, entry, age=5.0, ttl=3600.0)
    with pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)
    assert info.value.kind == "nxdomain"
    assert cache.addresses(NAME) == [] and cache.stats()["fleet_loads"] == 0


# -- through RedisState, on a real redis-server ---------------------------------------------------------------
@pytest.fixture
def redis_process(redis_server, namespace):
    """One RedisState (a process) with a breaker and budget on KEY, listening; and a raw client."""
    import redis

    from resilient_aws.fleet.redis_state import RedisState

    state = RedisState(redis_server.url, namespace=namespace, timeout=1.0, reconnect_interval=0.05)
    now = time.monotonic()
    breaker = CircuitBreaker(BREAKER, now=now)
    budget = RetryBudget(BUDGET, now=now)
    link = state.endpoint(KEY, breaker, budget)
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    breaker.on_failure(now, ADMIT)   # one failure, reported: the background threads start and subscribe
    assert wait_until(lambda: redis_server.command("PUBSUB", "NUMSUB", f"{namespace}:events")[1] == 1)
    assert wait_until(lambda: state.counters["calls"] >= 1 and not state._outbox)
    yield state, link, client
    state.close()
    client.close()


def test_garbage_published_on_the_channel_is_ignored_by_a_redis_state(redis_process, namespace, fleet_warnings):
    state, link, client = redis_process
    garbage = [m.replace(NS, namespace) if isinstance(m, str) else m for m in GARBAGE_MESSAGES.values()]
    for data in garbage:
        client.publish(f"{namespace}:events", data)
    assert wait_until(lambda: state.counters["invalid"] == len(garbage))
    assert link.breaker.state == CLOSED and state.counters["messages"] == 0
    assert state.up and state.counters["outages"] == 0
    assert warnings(fleet_warnings) == [w for w in warnings(fleet_warnings) if w.startswith("ignored invalid")]
    assert len(warnings(fleet_warnings)) == 1


def test_a_valid_message_after_garbage_on_the_channel_is_still_followed(redis_process, namespace):
    state, link, client = redis_process
    client.publish(f"{namespace}:events", "garbage")
    client.publish(f"{namespace}:events", encode_message(namespace, KEY, View("open", 1.0, "")))
    assert wait_until(lambda: link.breaker.state == OPEN, timeout=2.0)
    assert state.counters["invalid"] == 1 and state.up


def _record(namespace: str) -> str:
    return f"{namespace}:{{{KEY}}}:b"


def _server_ms(client, seconds: float = 0.0) -> int:
    """The server's clock in milliseconds, plus ``seconds``."""
    now_s, now_us = client.time()
    return now_s * 1000 + now_us // 1000 + int(seconds * 1000)


def test_a_record_with_an_unknown_state_is_answered_and_refused_as_invalid(redis_process, namespace, fleet_warnings):
    state, link, client = redis_process
    client.hset(_record(namespace), mapping={"st": "weird", "until": _server_ms(client, 60), "h": ""})
    with pytest.raises(Invalid, match="unknown breaker state"):
        state.store.read(KEY)
    assert link.claim() is None                    # the client refused the claim's reply...
    assert state.up and state.counters["outages"] == 0 and state.counters["invalid"] == 1  # ...Redis is not down
    assert warnings(fleet_warnings)[0].startswith("ignored invalid shared state")


def test_a_record_with_a_garbage_until_counts_as_run_out_and_the_next_claim_repairs_it(redis_process, namespace):
    state, _, client = redis_process
    client.hset(_record(namespace), mapping={"st": "weird", "until": "abc", "h": ""})
    with pytest.raises(Invalid):
        state.store.read(KEY)
    granted, view = state.store.claim(KEY, "someone", lease=5.0)
    assert granted and view.state == "probing" and view.holder == "someone"
    assert state.store.read(KEY).holder == "someone"


def test_an_open_record_with_a_garbage_until_reads_as_open_with_no_time_left(redis_process, namespace):
    state, _, client = redis_process
    client.hset(_record(namespace), mapping={"st": "open", "until": "abc", "h": ""})
    assert state.store.read(KEY) == View("open", 0.0, "")


def test_a_record_of_the_wrong_type_fails_the_script_as_invalid_not_as_an_outage(redis_process, namespace):
    state, link, client = redis_process
    client.set(_record(namespace), "not a hash")
    with pytest.raises(Invalid, match="WRONGTYPE"):
        state.store.claim(KEY, "someone", lease=1.0)
    assert link.claim() is None
    assert state.up and state.counters["outages"] == 0 and state.counters["invalid"] == 1


def test_a_garbage_reserve_still_answers(redis_process, namespace):
    state, _, client = redis_process
    client.hset(f"{namespace}:{{{KEY}}}:r", mapping={"t": "abc", "at": "xyz", "ds": "?", "dn": "!"})
    granted, wait = state.store.reserve(KEY, rate=1.0, capacity=5.0)
    assert granted and wait == 0.0


@pytest.mark.parametrize("entry", [GARBAGE_DNS["not an address at all"], GARBAGE_DNS["another namespace"],
                                   GARBAGE_DNS["not JSON"]], ids=["not an IP", "another namespace", "not JSON"])
def test_a_garbage_dns_entry_in_redis_is_ignored_by_a_redis_state(redis_process, namespace, entry, fleet_warnings):
    state, _, client = redis_process
    client.hset(f"{namespace}:dns:{NAME}", mapping={"v": entry.replace(NS, namespace), "at": _server_ms(client, -5)})
    dns = state.dns(DnsPolicy(nameservers=["127.0.0.1"]))
    assert dns.lookup(NAME) is None
    assert state.up and state.counters["invalid"] == 1
    assert warnings(fleet_warnings)[0].startswith("ignored invalid shared state")


def test_a_record_with_no_state_field_never_closes_an_open_breaker(redis_process, namespace):
    state, link, client = redis_process
    for _ in range(3):                                     # the breaker opens, and so does the fleet's record
        link.breaker.on_failure(time.monotonic(), ADMIT)
    assert wait_until(lambda: state.store.read(KEY) is not None and link.breaker.state == OPEN)
    client.delete(_record(namespace))
    client.hset(_record(namespace), mapping={"until": _server_ms(client, 60), "h": ""})   # no "st"
    state.mark_down(ConnectionError("test"))
    state.mark_up()                                        # resync: tells the store, which answers "closed"
    assert link.breaker.state == OPEN
    assert state.up and state.counters["outages"] == 1
