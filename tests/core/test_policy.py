"""Bad configuration raises ConfigError at construction, naming the field."""

import pytest

import resilient_aws
from resilient_aws import BreakerPolicy, BudgetPolicy, ConfigError, DnsPolicy, FailoverPolicy, Policy, RetryPolicy


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: RetryPolicy(max_attempts=0), "RetryPolicy.max_attempts"),
        (lambda: RetryPolicy(max_attempts=2.5), "RetryPolicy.max_attempts"),
        (lambda: RetryPolicy(base_delay=-1), "RetryPolicy.base_delay"),
        (lambda: RetryPolicy(max_delay=0.01, base_delay=0.1), "RetryPolicy.max_delay"),
        (lambda: RetryPolicy(jitter="decorrelated"), "RetryPolicy.jitter"),
        (lambda: RetryPolicy(deadline=0), "RetryPolicy.deadline"),
        (lambda: RetryPolicy(deadline=float("nan")), "RetryPolicy.deadline"),
        (lambda: BudgetPolicy(ratio=-0.1), "BudgetPolicy.ratio"),
        (lambda: BudgetPolicy(min_per_second=-1), "BudgetPolicy.min_per_second"),
        (lambda: BudgetPolicy(window=0), "BudgetPolicy.window"),
        (lambda: BudgetPolicy(enabled="yes"), "BudgetPolicy.enabled"),
        (lambda: BreakerPolicy(failure_ratio=0), "BreakerPolicy.failure_ratio"),
        (lambda: BreakerPolicy(failure_ratio=1.5), "BreakerPolicy.failure_ratio"),
        (lambda: BreakerPolicy(min_calls=0), "BreakerPolicy.min_calls"),
        (lambda: BreakerPolicy(open_time=10, max_open_time=5), "BreakerPolicy.max_open_time"),
        (lambda: BreakerPolicy(open_jitter=1.0), "BreakerPolicy.open_jitter"),
        (lambda: BreakerPolicy(probes=0), "BreakerPolicy.probes"),
        (lambda: DnsPolicy(nameservers=["not-an-ip"]), "DnsPolicy.nameservers"),
        (lambda: DnsPolicy(nameservers="127.0.0.1"), "DnsPolicy.nameservers"),
        (lambda: DnsPolicy(nameservers=[]), "DnsPolicy.nameservers"),
        (lambda: DnsPolicy(port=70000), "DnsPolicy.port"),
        (lambda: DnsPolicy(timeout=0), "DnsPolicy.timeout"),
        (lambda: DnsPolicy(max_stale=-1), "DnsPolicy.max_stale"),
        (lambda: FailoverPolicy(operations="PutItem"), "FailoverPolicy.operations"),
        (lambda: Policy(retry=BudgetPolicy()), "Policy.retry"),
    ],
)
def test_invalid_policy_field_raises_config_error_naming_it(factory, field):
    with pytest.raises(ConfigError) as info:
        factory()
    assert info.value.field == field
    assert field in str(info.value)


DAY = 86400.0


@pytest.mark.parametrize(
    ("factory", "field", "shown"),
    [
        # bug 12: a huge int overflowed float conversion (OverflowError) instead of naming the field
        (lambda: BudgetPolicy(ratio=10**400), "BudgetPolicy.ratio", "10**400"),
        (lambda: BudgetPolicy(ratio=-(10**400)), "BudgetPolicy.ratio", "-10**400"),
        (lambda: BudgetPolicy(min_per_second=10**5000), "BudgetPolicy.min_per_second", "10**5000"),
        (lambda: RetryPolicy(base_delay=10**400), "RetryPolicy.base_delay", "10**400"),
        (lambda: RetryPolicy(deadline=10**400), "RetryPolicy.deadline", "10**400"),
        (lambda: BreakerPolicy(open_time=10**400), "BreakerPolicy.open_time", "10**400"),
        (lambda: DnsPolicy(timeout=10**400), "DnsPolicy.timeout", "10**400"),
        # bug 12: finite but absurd values were accepted and crashed later (time.sleep(1e300) overflows)
        (lambda: RetryPolicy(max_delay=1e300), "RetryPolicy.max_delay", "1e+300"),
        (lambda: RetryPolicy(base_delay=DAY + 1, max_delay=DAY + 1), "RetryPolicy.base_delay", "86401"),
        (lambda: RetryPolicy(throttle_base_delay=1e20), "RetryPolicy.throttle_base_delay", "1e+20"),
        (lambda: RetryPolicy(max_delay=DAY * 2), "RetryPolicy.max_delay", "172800"),
        (lambda: RetryPolicy(max_retry_after_extra=1e300), "RetryPolicy.max_retry_after_extra", "1e+300"),
        (lambda: RetryPolicy(deadline=DAY + 0.5), "RetryPolicy.deadline", "86400.5"),
        (lambda: BudgetPolicy(min_per_second=1e6 + 1), "BudgetPolicy.min_per_second", "1000001"),
        (lambda: BudgetPolicy(ratio=101), "BudgetPolicy.ratio", "101"),
        (lambda: BudgetPolicy(window=DAY + 1), "BudgetPolicy.window", "86401"),
        (lambda: BreakerPolicy(open_time=1e300, max_open_time=1e300), "BreakerPolicy.open_time", "1e+300"),
        (lambda: BreakerPolicy(max_open_time=DAY + 1), "BreakerPolicy.max_open_time", "86401"),
        (lambda: BreakerPolicy(open_time=0.0005), "BreakerPolicy.open_time", "0.0005"),
        (lambda: BreakerPolicy(window=DAY + 1), "BreakerPolicy.window", "86401"),
        (lambda: DnsPolicy(timeout=DAY + 1), "DnsPolicy.timeout", "86401"),
        (lambda: DnsPolicy(max_stale=30 * DAY + 1), "DnsPolicy.max_stale", "2592001"),
        (lambda: DnsPolicy(recheck_interval=1e300), "DnsPolicy.recheck_interval", "1e+300"),
        (lambda: DnsPolicy(min_ttl=DAY + 1), "DnsPolicy.min_ttl", "86401"),
        # booleans are ints in Python, but never a number of seconds
        (lambda: RetryPolicy(max_delay=True), "RetryPolicy.max_delay", "True"),
        (lambda: BudgetPolicy(ratio=False), "BudgetPolicy.ratio", "False"),
        (lambda: DnsPolicy(min_ttl=True), "DnsPolicy.min_ttl", "True"),
        (lambda: BreakerPolicy(open_jitter=float("inf")), "BreakerPolicy.open_jitter", "inf"),
    ],
)
def test_out_of_range_number_raises_config_error_naming_field_and_value(factory, field, shown):
    with pytest.raises(ConfigError) as info:
        factory()
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(field + ": ")
    assert shown in message
    assert len(message) < 200  # a 5000-digit int is summarised, not printed (nor refused by int -> str)


def test_huge_int_is_reported_as_not_finite():
    with pytest.raises(ConfigError, match=r"BudgetPolicy\.ratio: must be finite"):
        BudgetPolicy(ratio=10**400)


def test_every_seconds_field_accepts_its_documented_maximum():
    # one day for delays, deadlines, open times, windows and DNS timers; 30 days of stale DNS (RFC 8767
    # suggests 1 to 3 days); a million retries per second of budget floor; ratio up to 100
    RetryPolicy(base_delay=DAY, throttle_base_delay=DAY, max_delay=DAY, deadline=DAY, max_retry_after_extra=DAY)
    RetryPolicy(base_delay=86400, max_delay=86400)  # ints are numbers too
    BudgetPolicy(ratio=100, min_per_second=1e6, window=DAY)
    BreakerPolicy(open_time=DAY, max_open_time=DAY, window=DAY)
    BreakerPolicy(open_time=0.001, max_open_time=0.001)
    DnsPolicy(timeout=DAY, max_stale=30 * DAY, recheck_interval=DAY, min_ttl=DAY)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_default_policy_is_valid_and_shareable():
    policy = Policy()
    assert policy.retry.max_attempts == 3
    assert policy.budget.ratio == 0.1
    with pytest.raises(AttributeError):
        policy.retry = RetryPolicy()  # frozen: one instance can be shared across threads


def test_nameservers_are_normalised_to_a_tuple():
    assert DnsPolicy(nameservers=["127.0.0.1", "::1"]).nameservers == ("127.0.0.1", "::1")


def test_reads_fail_over_by_default_but_writes_do_not():
    policy = FailoverPolicy()
    for op in ("GetItem", "BatchGetItem", "TransactGetItems", "Query", "Scan", "DescribeTable", "ListTables"):
        assert policy.may_fail_over(op), op
    for op in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems", "ExecuteStatement"):
        assert not policy.may_fail_over(op), op


def test_writes_fail_over_when_allowed_explicitly():
    assert FailoverPolicy(allow_writes=True).may_fail_over("PutItem")
    assert FailoverPolicy(operations={"PutItem"}).may_fail_over("PutItem")
    assert not FailoverPolicy(operations={"PutItem"}).may_fail_over("DeleteItem")


def test_denied_operation_never_fails_over():
    assert not FailoverPolicy(deny_operations={"Scan"}).may_fail_over("Scan")
    assert not FailoverPolicy(enabled=False).may_fail_over("GetItem")


def _session(**kwargs):
    kwargs.setdefault("aws_access_key_id", "testing")
    kwargs.setdefault("aws_secret_access_key", "testing")
    return resilient_aws.Session(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"region_name": "us-east-1", "failover_regions": ["us-east-1"]}, "failover_regions"),
        ({"region_name": "us-east-1", "failover_regions": ["us-west-2", "us-west-2"]}, "failover_regions"),
        ({"region_name": "us-east-1", "failover_regions": "us-west-2"}, "failover_regions"),
        ({"region_name": "us east 1"}, "region_name"),
        ({"region_name": "us-east-1", "policy": {"retry": 3}}, "policy"),
        ({"region_name": "us-east-1", "aws_secret_access_key": None}, "aws_secret_access_key"),
    ],
)
def test_invalid_session_argument_raises_config_error_naming_it(kwargs, field):
    with pytest.raises(ConfigError) as info:
        _session(**kwargs)
    assert info.value.field == field


def test_a_client_without_any_region_names_region_name(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    session = _session()  # like boto3.Session(): a session needs no region, a client does
    with pytest.raises(ConfigError) as info:
        session.client("dynamodb")
    assert info.value.field == "region_name"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"region_name": "us-esat-1"}, "region_name"),
    ({"region_name": "us-east-1", "failover_regions": ["us-wset-2"]}, "failover_regions"),
])
def test_a_misspelt_region_is_refused_at_construction_with_the_close_matches(kwargs, field):
    with pytest.raises(ConfigError) as info:
        _session(**kwargs)
    assert info.value.field == field
    assert ("'us-east-1'" if field == "region_name" else "'us-west-2'") in str(info.value)


def test_a_region_botocore_does_not_know_is_accepted_with_its_endpoint():
    session = _session(region_name="us-east-1", policy=Policy(dns=DnsPolicy(enabled=False)))
    with pytest.raises(ConfigError, match="xx-future-1"):
        session.client("dynamodb", failover_regions=["xx-future-1"])
    client = session.client("dynamodb", failover_regions=["xx-future-1"],
                            endpoint_urls={"xx-future-1": "http://127.0.0.1:1"})
    assert client.regions == ("us-east-1", "xx-future-1")


def test_a_region_the_service_does_not_have_is_refused_at_client():
    session = _session(region_name="us-east-1", policy=Policy(dns=DnsPolicy(enabled=False)))
    with pytest.raises(ConfigError) as info:
        session.client("dynamodb", failover_regions=["cn-north-1"])  # another partition
    assert info.value.field == "failover_regions"


def test_unknown_service_is_named_with_a_suggestion():
    session = _session(region_name="us-east-1", policy=Policy(dns=DnsPolicy(enabled=False)))
    with pytest.raises(ConfigError) as info:
        session.client("dynamodbb")
    assert info.value.field == "service_name"
    assert "'dynamodb'" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"endpoint_urls": {"eu-west-1": "http://127.0.0.1:1"}}, "endpoint_urls"),
        ({"endpoint_urls": {"us-east-1": "127.0.0.1:1"}}, "endpoint_urls"),
        ({"endpoint_urls": ["http://127.0.0.1:1"]}, "endpoint_urls"),
        ({"endpoint_url": "ftp://x"}, "endpoint_url"),
        ({"endpoint_url": "http://127.0.0.1:2", "endpoint_urls": {"us-east-1": "http://127.0.0.1:1"}},
         "endpoint_url"),
        ({"config": {"retries": 1}}, "config"),
    ],
)
def test_invalid_client_argument_raises_config_error_naming_it(kwargs, field):
    session = _session(region_name="us-east-1", failover_regions=["us-west-2"],
                       policy=Policy(dns=DnsPolicy(enabled=False)))
    with pytest.raises(ConfigError) as info:
        session.client("dynamodb", **kwargs)
    assert info.value.field == field


def test_wrap_rejects_something_that_is_not_a_client():
    with pytest.raises(ConfigError) as info:
        resilient_aws.wrap(object())
    assert info.value.field == "client"


def _dynamodb_client(failover):
    session = _session(region_name="us-east-1", failover_regions=["us-west-2"],
                       policy=Policy(dns=DnsPolicy(enabled=False), failover=failover))
    return session.client("dynamodb")


def test_failover_operations_accept_python_method_names():
    client = _dynamodb_client(FailoverPolicy(operations=["put_item"], deny_operations=["query"]))
    assert client._may_fail_over("PutItem") is True
    assert client._may_fail_over("Query") is False


def test_a_misspelt_failover_operation_is_refused_with_the_close_matches():
    with pytest.raises(ConfigError) as info:
        _dynamodb_client(FailoverPolicy(operations=["PutItm"]))
    assert info.value.field == "FailoverPolicy.operations"
    assert "'PutItem'" in str(info.value)


def test_another_services_operation_in_a_shared_policy_is_accepted():
    client = _dynamodb_client(FailoverPolicy(operations=["SendMessage", "put_item"]))
    assert client._may_fail_over("PutItem") is True


def test_an_unknown_profile_fails_at_session_like_boto3():
    from botocore.exceptions import ProfileNotFound

    with pytest.raises(ProfileNotFound):
        resilient_aws.Session(profile_name="no-such-profile-here", region_name="us-east-1")
