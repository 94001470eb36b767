"""How shared state is attached: Session(shared_state=), wrap(shared_state=), and what a client then does.

Two "processes" here are two sessions, each with its own SharedState over one in-memory store whose
published messages reach both; the regions are real botocore clients scripted at before-send.
"""

from __future__ import annotations

import boto3
import pytest
from support.fakes import KEY, FakeClock, Region, _botocore_session, error

import resilient_aws
from resilient_aws.fleet import MemoryStore, SharedState

POLICY = resilient_aws.Policy(breaker=resilient_aws.BreakerPolicy(min_calls=4, open_time=1.0),
                              dns=resilient_aws.DnsPolicy(enabled=False))
URLS = {"us-east-1": "http://127.0.0.1:9", "us-west-2": "http://127.0.0.2:9"}


class Fleet:
    """N processes' shared states over one store; messages are delivered to every one at once."""

    def __init__(self, clock: FakeClock, n: int) -> None:
        self.states: list[SharedState] = []
        self.store = MemoryStore(clock.monotonic, publish=self._publish)
        self.states = [SharedState(self.store, timing=clock.timing()) for _ in range(n)]

    def _publish(self, text: str) -> None:
        for state in self.states:
            state.deliver(text)


def process(fleet: Fleet, i: int, clock: FakeClock, scripts: dict[str, list]) -> tuple[object, dict[str, Region]]:
    session = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"], policy=POLICY,
                                    botocore_session=_botocore_session(), aws_access_key_id="testing",
                                    aws_secret_access_key="testing", timing=clock.timing(),
                                    shared_state=fleet.states[i])
    client = session.client("dynamodb", endpoint_urls=URLS)
    fakes = {r: Region(r, list(scripts.get(r, ()))) for r in URLS}
    for lane in client._lanes:
        lane.client().meta.events.register("before-send.dynamodb", fakes[lane.region].before_send)
    return client, fakes


def test_session_attaches_every_endpoint_breaker_and_budget_to_the_shared_state():
    clock = FakeClock()
    fleet = Fleet(clock, 1)
    client, _ = process(fleet, 0, clock, {})
    for lane in client._lanes:
        link = lane.health.fleet
        assert link is not None and link.shared is fleet.states[0]
        assert lane.health.breaker.fleet is link and lane.health.budget.fleet is link
        assert link.key == f"dynamodb|{lane.region}|{URLS[lane.region]}"


def test_a_session_without_shared_state_has_no_fleet_links():
    session = resilient_aws.Session(region_name="us-east-1", botocore_session=_botocore_session(),
                                    aws_access_key_id="testing", aws_secret_access_key="testing", policy=POLICY)
    client = session.client("dynamodb", endpoint_url=URLS["us-east-1"])
    assert client._lanes[0].health.fleet is None and client.stats()["shared_state"] is None


@pytest.mark.parametrize("bad", ["redis://127.0.0.1:6379", object(), MemoryStore(lambda: 0.0)])
def test_shared_state_of_the_wrong_type_is_refused_naming_the_field(bad):
    with pytest.raises(resilient_aws.ConfigError, match="shared_state"):
        resilient_aws.Session(region_name="us-east-1", shared_state=bad)


def test_wrap_attaches_the_shared_state_too():
    clock = FakeClock()
    fleet = Fleet(clock, 1)
    plain = boto3.Session(botocore_session=_botocore_session(), region_name="us-east-1").client(
        "dynamodb", endpoint_url=URLS["us-east-1"], aws_access_key_id="testing", aws_secret_access_key="testing")
    hardened = resilient_aws.wrap(plain, policy=POLICY, shared_state=fleet.states[0], timing=clock.timing())
    assert hardened._lanes[0].health.breaker.fleet is hardened._lanes[0].health.fleet is not None
    with pytest.raises(resilient_aws.ConfigError, match="shared_state"):
        resilient_aws.wrap(plain, shared_state="redis://127.0.0.1:6379")


def test_failures_of_one_process_open_the_breaker_of_another_that_made_no_call():
    clock = FakeClock()
    fleet = Fleet(clock, 2)
    a, _ = process(fleet, 0, clock, {"us-east-1": [error(503)] * 20, "us-west-2": [{"Item": {}}] * 20})
    b, b_regions = process(fleet, 1, clock, {"us-west-2": [{"Item": {}}]})
    for _ in range(4):
        a.get_item(**KEY)
    assert a.stats()["regions"]["us-east-1"]["breaker"] == "open"
    assert b.stats()["regions"]["us-east-1"]["breaker"] == "open"
    b.get_item(**KEY)                              # straight to the failover region
    assert b_regions["us-east-1"].sent == [] and len(b_regions["us-west-2"].sent) == 1


def test_client_stats_report_the_shared_state():
    clock = FakeClock()
    fleet = Fleet(clock, 1)
    client, _ = process(fleet, 0, clock, {})
    shared = client.stats()["shared_state"]
    assert shared["up"] is True and shared["owner"] == fleet.states[0].owner
