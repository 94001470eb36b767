"""The store contract, one set of cases run on both implementations: MemoryStore (a hand-moved clock)
and RedisStore (the Lua scripts on a real redis-server on loopback).

Why both: the fleet simulation and every unit test of the fleet's breakers, budgets and DNS answers run
on MemoryStore, so they prove something about production only if MemoryStore does what the scripts
do. Each case below says one thing the contract promises; the ``store`` fixture runs it on each.

Time: on MemoryStore the test moves the clock; on Redis time is the server's, so cases that need an
open time or a lease to run out use 0.2 s and wait exactly that long (bounded), never a fixed long sleep.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from support.dns import FakeClock

from resilient_aws.fleet.store import CLOSED, OPEN, PROBING, MemoryStore, Message, View, dns_from, message_from

K = "dynamodb|us-east-1|https://dynamodb.us-east-1.amazonaws.com"
SHORT = 0.2   # an open time / lease that a test on Redis waits out
LONG = 5.0    # an open time no test waits out
WINDOW = dict(min_calls=4, failure_ratio=0.5, window=10.0, open_time=LONG)


class Harness:
    """One store under test, what it published, and how time passes for it."""

    name = ""
    #: How far a duration read from the store may be below the one expected (the store's clock ran).
    slack = 0.0

    def __init__(self, store: object, namespace: str) -> None:
        self.store = store
        self.namespace = namespace

    def messages(self, key: str = K) -> list[Message]:
        """Every message published so far about ``key``, in order."""
        raise NotImplementedError

    def elapse(self, seconds: float) -> None:
        raise NotImplementedError

    def expire(self, key: str = K) -> None:
        """Let the record's open time (or lease) run out."""
        raise NotImplementedError


class MemoryHarness(Harness):
    name = "memory"

    def __init__(self, namespace: str) -> None:
        self.clock = FakeClock()
        self.raw: list[str] = []
        super().__init__(MemoryStore(self.clock, namespace=namespace, publish=self.raw.append), namespace)

    def messages(self, key: str = K) -> list[Message]:
        return [m for m in (message_from(text, self.namespace) for text in self.raw) if m.key == key]

    def elapse(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def expire(self, key: str = K) -> None:
        view = self.store.read(key)
        self.clock.advance(view.remaining if view is not None else 0.0)


class RedisHarness(Harness):
    name = "redis"
    slack = 0.5

    def __init__(self, url: str, namespace: str) -> None:
        import redis

        from resilient_aws.fleet.redis_store import RedisStore

        super().__init__(RedisStore(url, namespace=namespace, timeout=2.0), namespace)
        self._client = redis.Redis.from_url(url, socket_timeout=5)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=False)
        self._pubsub.subscribe(f"{namespace}:events")
        confirmed = self._pubsub.get_message(timeout=5)
        assert confirmed is not None and confirmed["type"] == "subscribe"
        self._seen: list[Message] = []
        self._sentinels = 0

    def messages(self, key: str = K) -> list[Message]:
        # a sentinel published after the operations comes after every message they published
        self._sentinels += 1
        sentinel = f"sentinel-{self._sentinels}".encode()
        self._client.publish(f"{self.namespace}:events", sentinel)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            item = self._pubsub.get_message(timeout=0.5)
            if item is None or item["type"] != "message":
                continue
            if item["data"] == sentinel:
                break
            self._seen.append(message_from(item["data"], self.namespace))
        else:
            raise AssertionError("the sentinel message did not come back within 5 s")
        return [m for m in self._seen if m.key == key]

    def elapse(self, seconds: float) -> None:
        assert seconds <= 1.0, "tests on Redis wait out short times only"
        time.sleep(seconds)

    def expire(self, key: str = K) -> None:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            view = self.store.read(key)
            if view is None or view.remaining == 0.0:
                return
            time.sleep(min(view.remaining, 0.05))
        raise AssertionError(f"the record of {key} did not run out within 3 s")

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()
        self.store.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def h(request, namespace) -> Iterator[Harness]:
    """The store under test (``h.store``), each test in its own namespace."""
    if request.param == "memory":
        yield MemoryHarness(namespace)
        return
    server = request.getfixturevalue("redis_server")
    harness = RedisHarness(server.url, namespace)
    yield harness
    harness.close()


def report(h: Harness, owner: str, successes: int, failures: int, **window: float) -> View:
    """A report's view of the breaker (the reply's other part, the store's count of reports this second,
    is checked on its own)."""
    view, _ = h.store.report(K, owner, successes, failures, **window)
    return view


def opened(h: Harness, open_time: float = LONG) -> View:
    return h.store.open(K, "opener", open_time=open_time)


def claimed(h: Harness, owner: str = "a", lease: float = LONG) -> View:
    """Open for a short time, let it run out, and claim the probe lease as ``owner``."""
    opened(h, SHORT)
    h.expire()
    granted, view = h.store.claim(K, owner, lease=lease)
    assert granted and view.holder == owner
    return view


def close_to(value: float, expected: float, h: Harness) -> bool:
    return expected - h.slack - 1e-9 <= value <= expected + 1e-9


# -- the failure window -----------------------------------------------------------------------------------
def test_a_report_below_min_calls_does_not_open(h):
    view = report(h, "a", 0, 3, **WINDOW)
    assert view == View(CLOSED)
    assert h.store.read(K) is None
    assert h.messages() == []


def test_a_report_reaching_min_calls_with_the_failure_ratio_opens_and_publishes_once(h):
    report(h, "a", 0, 3, **WINDOW)
    view = report(h, "a", 0, 1, **WINDOW)
    report(h, "a", 0, 5, **WINDOW)  # more failures while open change nothing
    assert view.state == OPEN and view.remaining == LONG and view.holder == ""
    assert h.messages() == [Message(K, View(OPEN, LONG, ""))]


def test_reports_of_several_owners_add_up_in_one_window(h):
    report(h, "a", 0, 2, **WINDOW)
    view = report(h, "b", 0, 2, **WINDOW)
    assert view.state == OPEN


def test_successes_in_the_window_keep_it_closed(h):
    report(h, "a", 7, 0, **WINDOW)
    view = report(h, "b", 0, 6, **WINDOW)  # 6 of 13 failed: below the ratio of 0.5
    assert view == View(CLOSED)
    assert h.store.read(K) is None
    assert h.messages() == []


def test_a_report_says_how_many_reports_the_store_took_this_second(h):
    counts = [h.store.report(K, owner, 0, 1, **WINDOW)[1] for owner in ("a", "b", "a", "c")]
    # one more each time; on Redis a second may turn between two reports, and the count starts again at 1
    steps = list(itertools.pairwise(counts))
    assert counts[0] == 1 and all(b == a + 1 or b == 1 for a, b in steps)
    assert sum(b == 1 for _, b in steps) <= (1 if h.name == "redis" else 0)


# -- opening ------------------------------------------------------------------------------------------------
def test_open_opens_once_and_a_second_open_returns_the_same_view(h):
    first = h.store.open(K, "a", open_time=LONG)
    second = h.store.open(K, "b", open_time=LONG * 2)
    assert first == View(OPEN, LONG, "")
    assert second.state == OPEN and close_to(second.remaining, LONG, h)  # not re-opened for longer
    assert h.messages() == [Message(K, View(OPEN, LONG, ""))]


def test_open_while_probing_returns_the_probe_and_keeps_it(h):
    claimed(h, "a")
    view = h.store.open(K, "b", open_time=LONG)
    assert view.state == PROBING and view.holder == "a"


# -- the probe lease ------------------------------------------------------------------------------------------
def test_a_claim_before_the_time_is_up_is_denied_with_the_remaining_time(h):
    opened(h, LONG)
    h.elapse(0.05)
    granted, view = h.store.claim(K, "a", lease=LONG)
    assert not granted
    assert view.state == OPEN and view.holder == ""
    assert close_to(view.remaining, LONG - 0.05, h)


def test_a_claim_after_the_time_is_up_is_granted_to_exactly_one_of_several_owners(h):
    opened(h, SHORT)
    h.expire()
    answers = {owner: h.store.claim(K, owner, lease=LONG) for owner in ("a", "b", "c", "d")}
    winners = [owner for owner, (granted, _) in answers.items() if granted]
    assert winners == ["a"]
    for owner in ("b", "c", "d"):
        _, view = answers[owner]
        assert view.state == PROBING and view.holder == "a" and close_to(view.remaining, LONG, h)


def test_a_granted_claim_is_published_with_its_holder_and_lease(h):
    opened(h, SHORT)
    h.expire()
    h.store.claim(K, "a", lease=LONG)
    assert h.messages()[-1] == Message(K, View(PROBING, LONG, "a"))


def test_a_denied_claim_publishes_nothing(h):
    opened(h, LONG)
    before = len(h.messages())
    h.store.claim(K, "a", lease=LONG)
    assert len(h.messages()) == before


def test_a_lease_whose_holder_never_reports_runs_out_and_goes_to_the_next_claim(h):
    claimed(h, "a", lease=SHORT)
    h.expire()
    granted, view = h.store.claim(K, "b", lease=LONG)
    assert granted and view.holder == "b"


def test_a_claim_with_no_record_is_granted_without_opening_the_fleet(h):
    # the fleet is closed (a process missed the closing, or the store restarted): that process probes alone,
    # and nothing is written or published, so one late process cannot re-open every other one
    granted, view = h.store.claim(K, "a", lease=LONG)
    assert granted and view == View(CLOSED)
    assert h.store.read(K) is None and h.messages() == []


def test_probe_done_ok_by_the_holder_closes_and_clears_the_window(h):
    report(h, "x", 0, 4, min_calls=4, failure_ratio=0.5, window=10.0, open_time=SHORT)
    h.expire()
    h.store.claim(K, "a", lease=LONG)
    view = h.store.probe_done(K, "a", True, open_time=LONG)
    assert view == View(CLOSED)
    assert h.store.read(K) is None
    assert h.messages()[-1] == Message(K, View(CLOSED, 0.0, ""))
    # the four failures before the probe are forgotten: one more does not open again
    assert report(h, "x", 0, 1, **WINDOW) == View(CLOSED)


def test_probe_done_by_a_non_holder_is_ignored(h):
    claimed(h, "a")
    before = len(h.messages())
    for ok in (True, False):
        view = h.store.probe_done(K, "b", ok, open_time=LONG)
        assert view.state == PROBING and view.holder == "a"
    assert h.store.read(K).holder == "a"
    assert len(h.messages()) == before


def test_probe_done_failed_reopens_for_open_time(h):
    claimed(h, "a")
    view = h.store.probe_done(K, "a", False, open_time=LONG)
    assert view == View(OPEN, LONG, "")
    assert h.messages()[-1] == Message(K, View(OPEN, LONG, ""))
    assert close_to(h.store.read(K).remaining, LONG, h)


def test_release_by_the_holder_lets_the_next_claim_in_at_once(h):
    claimed(h, "a")
    view = h.store.release(K, "a")
    assert view == View(OPEN, 0.0, "")
    granted, view = h.store.claim(K, "b", lease=LONG)
    assert granted and view.holder == "b"


def test_release_by_a_non_holder_is_ignored(h):
    claimed(h, "a")
    view = h.store.release(K, "b")
    assert view.state == PROBING and view.holder == "a"
    assert not h.store.claim(K, "b", lease=LONG)[0]


def test_read_of_an_absent_key_is_none(h):
    assert h.store.read(K) is None
    assert h.store.read("another|key|") is None


def test_read_of_an_open_record_is_its_view(h):
    opened(h, LONG)
    view = h.store.read(K)
    assert view.state == OPEN and view.holder == "" and close_to(view.remaining, LONG, h)


# -- the retry floor ----------------------------------------------------------------------------------------
def test_the_reserve_hands_out_exactly_capacity_tokens_then_denies_with_a_positive_wait(h):
    answers = [h.store.reserve(K, rate=1.0, capacity=5.0) for _ in range(8)]
    assert [granted for granted, _ in answers] == [True] * 5 + [False] * 3
    assert all(wait == 0.0 for _, wait in answers[:5])
    assert all(0.0 < wait <= 1.0 for _, wait in answers[5:])


def test_the_reserve_refills_at_its_rate(h):
    rate = 5.0
    for _ in range(2):
        assert h.store.reserve(K, rate=rate, capacity=2.0)[0]
    granted, wait = h.store.reserve(K, rate=rate, capacity=2.0)
    assert not granted and 0.0 < wait <= 1.0 / rate
    h.elapse(wait)
    assert h.store.reserve(K, rate=rate, capacity=2.0)[0]      # one token came back
    assert not h.store.reserve(K, rate=rate, capacity=2.0)[0]  # and only one


def test_the_first_denial_of_an_empty_floor_is_published_once_with_the_time_it_takes_to_fill(h):
    for _ in range(5):
        h.store.reserve(K, rate=1.0, capacity=5.0)
    denials = [h.store.reserve(K, rate=1.0, capacity=5.0) for _ in range(3)]
    assert not any(granted for granted, _ in denials)
    assert h.messages() == [Message(K, None, "floor", 5.0)]     # capacity / rate: empty to full


def test_a_granted_reserve_publishes_nothing(h):
    h.store.reserve(K, rate=1.0, capacity=5.0)
    assert h.messages() == []


def test_the_hundredth_report_of_a_second_publishes_how_to_pace_them(h):
    # 199 reports: whichever second holds 100 of them (one does, even if a second turns meanwhile on Redis)
    for _ in range(199):
        h.store.report(K, "a", 1, 0, **WINDOW)
    paces = [m for m in h.messages() if m.kind == "pace"]
    assert len(paces) == 1
    assert 0.0 < paces[0].wait <= 60.0


def test_reserves_of_different_endpoints_are_separate(h):
    assert h.store.reserve(K, rate=1.0, capacity=1.0)[0]
    assert not h.store.reserve(K, rate=1.0, capacity=1.0)[0]
    assert h.store.reserve("s3|us-east-1|", rate=1.0, capacity=1.0)[0]


# -- DNS ------------------------------------------------------------------------------------------------------
def test_dns_put_then_get_round_trips_with_its_age(h):
    h.store.dns_put("dynamodb.us-east-1.amazonaws.com", ["3.218.182.1", "2600:1f18::1"], max_stale=60.0)
    h.elapse(0.05)
    found = dns_from(h.store.dns_get("dynamodb.us-east-1.amazonaws.com"), h.namespace, 60.0)
    assert found is not None
    addresses, age = found
    assert addresses == ["3.218.182.1", "2600:1f18::1"]
    assert 0.049 <= age <= 0.05 + h.slack


def test_dns_get_of_an_unknown_name_is_none(h):
    assert h.store.dns_get("nowhere.example") is None


def test_a_dns_entry_is_gone_after_its_max_stale(h):
    h.store.dns_put("dynamodb.us-east-1.amazonaws.com", ["3.218.182.1"], max_stale=SHORT)
    h.elapse(SHORT + 0.05)
    assert h.store.dns_get("dynamodb.us-east-1.amazonaws.com") is None


def test_a_newer_dns_put_replaces_the_entry_and_its_age(h):
    h.store.dns_put("s3.amazonaws.com", ["52.216.1.1"], max_stale=60.0)
    h.elapse(0.1)
    h.store.dns_put("s3.amazonaws.com", ["52.216.2.2"], max_stale=60.0)
    addresses, age = dns_from(h.store.dns_get("s3.amazonaws.com"), h.namespace, 60.0)
    assert addresses == ["52.216.2.2"] and age < 0.1
