"""resilient_aws.otel: the OpenTelemetry instruments, read back with the SDK's in-memory reader.

Calls go to scripted regions (support/fakes.py: real botocore clients, no sockets). Each test gets
its own MeterProvider, passed explicitly, so no test touches the global provider. The import rules
(no OpenTelemetry unless ``resilient_aws.otel`` is imported; a clear error without it) are checked in
subprocesses, where ``sys.modules`` starts clean.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import botocore.session
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from support.dns import FakeClock as DnsClock
from support.dns import FakeResolver
from support.fakes import ITEM, KEY, FakeClock, Region, make_client, refused
from support.threads import run_in_threads

import resilient_aws
from resilient_aws import BreakerPolicy, DnsPolicy, FailoverPolicy, Policy, RetryPolicy
from resilient_aws.dns import DnsCache
from resilient_aws.otel import instrument

FAST = RetryPolicy(base_delay=0.0, max_delay=0.0)
URLS = {"us-east-1": "http://127.0.0.1:9", "us-west-2": "http://127.0.0.2:9"}  # make_client's
TESTS = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader):
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict, int]]:
    """(attributes, value) of every data point of the metric ``name`` in one collection."""
    data = reader.get_metrics_data()
    found = []
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes), p.value) for p in metric.data.data_points]
    return found


def scripted_session(policy: Policy | None = None, **kwargs) -> resilient_aws.Session:
    policy = policy or Policy(retry=FAST, dns=DnsPolicy(enabled=False))
    return resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"], policy=policy,
                                 botocore_session=botocore.session.Session(), aws_access_key_id="testing",
                                 aws_secret_access_key="testing", timing=FakeClock().timing(), **kwargs)


def scripted_client(session: resilient_aws.Session, scripts: dict | None = None):
    """A dynamodb client of ``session`` answered by per-region scripts (as make_client does)."""
    client = session.client("dynamodb", endpoint_urls=URLS)
    for lane in client._lanes:
        fake = Region(lane.region, list((scripts or {}).get(lane.region, ())))
        lane.client().meta.events.register("before-send.dynamodb", fake.before_send)
    return client


# -- events --------------------------------------------------------------------------------------------
def test_a_failover_is_counted_with_service_region_and_operation(provider, reader):
    client, _ = make_client(Policy(retry=FAST), {"us-east-1": [refused()]})
    instrument(client, provider)
    client.get_item(**KEY)
    assert points(reader, "resilient_aws.failovers") == [
        ({"service": "dynamodb", "region": "us-west-2", "operation": "GetItem", "from_region": "us-east-1"}, 1)]


def test_a_retry_is_counted_with_service_region_and_operation(provider, reader):
    client, _ = make_client(Policy(retry=FAST, failover=FailoverPolicy(enabled=False)), {"us-east-1": [503]})
    instrument(client, provider)
    client.get_item(**KEY)
    assert points(reader, "resilient_aws.retries") == [
        ({"service": "dynamodb", "region": "us-east-1", "operation": "GetItem"}, 1)]


def test_a_breaker_opening_is_counted_as_a_transition_and_the_gauge_reads_open(provider, reader):
    p = Policy(retry=RetryPolicy(max_attempts=1), failover=FailoverPolicy(enabled=False),
               breaker=BreakerPolicy(min_calls=1, open_time=60, max_open_time=60))
    client, _ = make_client(p, {"us-east-1": [503]})
    instrument(client, provider)
    with pytest.raises(client.exceptions.ClientError):
        client.put_item(**ITEM)
    assert client.stats()["regions"]["us-east-1"]["breaker"] == "open"
    east = {"service": "dynamodb", "region": "us-east-1", "endpoint_url": URLS["us-east-1"]}
    west = {"service": "dynamodb", "region": "us-west-2", "endpoint_url": URLS["us-west-2"]}
    assert points(reader, "resilient_aws.breaker.transitions") == [({**east, "from": "closed", "to": "open"}, 1)]
    assert sorted(points(reader, "resilient_aws.breaker.state"), key=lambda p: p[0]["region"]) == [
        (east, 2), (west, 0)]


def test_all_regions_open_is_counted_as_a_circuit_open_rejection(provider, reader):
    p = Policy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(min_calls=1, open_time=60, max_open_time=60))
    client, _ = make_client(p, {"us-east-1": [503]})
    instrument(client, provider)
    with pytest.raises(client.exceptions.ClientError):
        client.put_item(**ITEM)  # opens us-east-1; a write does not fail over
    with pytest.raises(resilient_aws.CircuitOpenError):
        client.put_item(**ITEM)
    assert points(reader, "resilient_aws.circuit_open_rejections") == [
        ({"service": "dynamodb", "operation": "PutItem"}, 1)]


def test_a_session_counts_the_events_of_a_client_made_after_instrument(provider, reader):
    session = scripted_session()
    instrument(session, provider)
    client = scripted_client(session, {"us-east-1": [refused()]})
    client.get_item(**KEY)
    assert [value for _, value in points(reader, "resilient_aws.failovers")] == [1]


def test_a_breaker_transition_reaching_two_instrumented_clients_is_counted_once(provider, reader):
    p = Policy(retry=RetryPolicy(max_attempts=1), failover=FailoverPolicy(enabled=False), dns=DnsPolicy(enabled=False),
               breaker=BreakerPolicy(min_calls=1, open_time=60, max_open_time=60))
    session = scripted_session(p)
    failing, sibling = scripted_client(session, {"us-east-1": [503]}), scripted_client(session)
    instrumentation = instrument(failing, provider)
    instrument(sibling, provider)
    instrumentation.add(session)
    with pytest.raises(failing.exceptions.ClientError):
        failing.put_item(**ITEM)
    assert [value for _, value in points(reader, "resilient_aws.breaker.transitions")] == [1]


def test_failovers_from_many_threads_are_each_counted_once(provider, reader):
    session = scripted_session()
    client = scripted_client(session, {"us-east-1": [refused()] * 400})
    instrument(session, provider)
    instrument(client, provider)  # every failover reaches two instrumented listeners

    def calls(i: int) -> None:
        for _ in range(50):
            client.get_item(**KEY)

    run_in_threads(8, calls)
    assert [value for _, value in points(reader, "resilient_aws.failovers")] == [client.stats()["failovers"]] == [400]


def test_close_removes_the_listeners(provider, reader):
    client, _ = make_client(Policy(retry=FAST), {"us-east-1": [refused(), refused()]})
    instrumentation = instrument(client, provider)
    client.get_item(**KEY)
    instrumentation.close()
    client.get_item(**KEY)
    assert client._emitter._listeners == ()
    assert [value for _, value in points(reader, "resilient_aws.failovers")] == [1]


def test_close_stops_the_observable_totals(provider, reader):
    client, _ = make_client(Policy(retry=FAST))
    client.get_item(**KEY)
    instrument(client, provider).close()
    assert points(reader, "resilient_aws.calls") == []


# -- totals read from stats() -----------------------------------------------------------------------------
def test_observable_totals_match_stats(provider, reader):
    client, fakes = make_client(Policy(retry=RetryPolicy(max_attempts=2, base_delay=0, max_delay=0)),
                                {"us-east-1": [refused()], "us-west-2": []})
    instrument(client, provider)
    client.get_item(**KEY)  # fails over
    client.get_item(**KEY)  # first attempt succeeds
    fakes["us-east-1"].script = [503, 503]
    with pytest.raises(client.exceptions.ClientError):
        client.put_item(**ITEM)  # a write: retried in us-east-1, then fails
    primary = {"service": "dynamodb", "region": "us-east-1"}
    calls = points(reader, "resilient_aws.calls")
    failed_calls = points(reader, "resilient_aws.failed_calls")
    attempts = dict((p[0]["region"], p[1]) for p in points(reader, "resilient_aws.attempts"))
    failed_attempts = dict((p[0]["region"], p[1]) for p in points(reader, "resilient_aws.failed_attempts"))
    s = client.stats()
    assert (calls, failed_calls) == ([(primary, s["calls"])], [(primary, s["failed"])])
    assert attempts == {r: v["attempts"] for r, v in s["regions"].items()}
    assert sum(attempts.values()) == s["attempts"]
    assert failed_attempts == {r: v["failed_attempts"] for r, v in s["regions"].items()}
    assert (s["calls"], s["failed"], s["attempts"]) == (3, 1, 5)  # the script did what the comments say


def test_two_clients_instrumented_separately_on_one_provider_are_both_observed(provider, reader):
    first, _ = make_client(Policy(retry=FAST))
    second, _ = make_client(Policy(retry=FAST))
    instrument(first, provider)
    instrument(second, provider)
    first.get_item(**KEY)
    second.get_item(**KEY)
    assert points(reader, "resilient_aws.calls") == [({"service": "dynamodb", "region": "us-east-1"}, 2)]


def test_a_session_s_breaker_gauge_covers_endpoints_of_clients_made_later(provider, reader):
    session = scripted_session()
    instrument(session, provider)
    assert points(reader, "resilient_aws.breaker.state") == []
    scripted_client(session)
    assert sorted((p[0]["region"], p[1]) for p in points(reader, "resilient_aws.breaker.state")) == [
        ("us-east-1", 0), ("us-west-2", 0)]


def test_a_session_s_totals_include_the_clients_it_lists(provider, reader, monkeypatch):
    session = scripted_session()
    client = scripted_client(session)
    monkeypatch.setattr(session, "clients", lambda: (client,), raising=False)  # the hook otel.py looks for
    instrument(session, provider)
    client.get_item(**KEY)
    assert points(reader, "resilient_aws.calls") == [({"service": "dynamodb", "region": "us-east-1"}, 1)]


def test_dns_stale_answers_served_are_read_from_the_session_s_cache(provider, reader):
    dns = DnsPolicy(nameservers=["127.0.0.1"], timeout=0.5, recheck_interval=0.3, min_ttl=0.0)
    session = scripted_session(Policy(retry=FAST, dns=dns))
    resolver, clock = FakeResolver(), DnsClock()
    # the cache the session's first client would create, on a fake resolver and clock
    cache = session._shared._dns = DnsCache(dns, session._shared.emitter, resolver=resolver, monotonic=clock)
    instrument(session, provider)
    resolver.set("svc.example", ["127.0.0.5"], ttl=1)
    cache.resolve("svc.example", 443)
    resolver.set_mode("svc.example", "servfail")
    clock.advance(1.05)  # past the TTL: the next answers are stale
    for _ in range(3):
        cache.resolve("svc.example", 443)
        clock.advance(0.05)
    assert points(reader, "resilient_aws.dns.stale_served") == [({}, 3)] == [({}, cache.stats()["stale_served"])]
    resolver.release()
    cache.close()


# -- imports ----------------------------------------------------------------------------------------------
def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, cwd=TESTS)


def test_importing_resilient_aws_and_calling_imports_no_opentelemetry():
    result = run_python(f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        import resilient_aws
        from support.fakes import KEY, make_client, refused
        client, _ = make_client(None, {{"us-east-1": [refused()]}})
        client.add_listener(lambda event: None)
        client.get_item(**KEY)
        client.stats()
        print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_instrumenting_before_the_sdk_is_configured_reports_through_the_global_provider_once():
    result = run_python(f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from support.fakes import KEY, make_client, refused
        from resilient_aws.otel import instrument

        early, _ = make_client(None, {{"us-east-1": [refused()]}})
        late, _ = make_client(None, {{"us-east-1": [refused()]}})
        instrument(early)  # the global provider is still the API's proxy
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(provider)
        instrument(late)
        instrument(late, provider)  # the same provider, named: no second set of instruments
        early.get_item(**KEY)
        late.get_item(**KEY)
        values = {{m.name: sum(p.value for p in m.data.data_points)
                  for rm in reader.get_metrics_data().resource_metrics
                  for sm in rm.scope_metrics for m in sm.metrics}}
        print(values["resilient_aws.failovers"], values["resilient_aws.calls"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]


def test_instrument_refuses_what_is_not_a_session_or_client(provider):
    with pytest.raises(TypeError, match="Session or ResilientClient"):
        instrument(object(), provider)


def test_without_opentelemetry_importing_resilient_aws_otel_names_the_extra():
    result = run_python("""
        import sys

        class HideOpenTelemetry:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, HideOpenTelemetry())
        import resilient_aws  # fine without OpenTelemetry
        try:
            import resilient_aws.otel
        except ImportError as exc:
            print(exc)
        else:
            sys.exit("resilient_aws.otel imported without OpenTelemetry")
    """)
    assert result.returncode == 0, result.stderr
    assert "pip install 'resilient-aws[otel]'" in result.stdout
