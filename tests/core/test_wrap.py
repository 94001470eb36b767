"""wrap(): an existing botocore client hardened in place, with one retry decision-maker."""

import contextlib

import botocore.session
from botocore.config import Config
from support.fakes import KEY, Region

import resilient_aws
from resilient_aws import DnsPolicy, FailoverPolicy, Policy, RetryPolicy

POLICY = Policy(retry=RetryPolicy(base_delay=0, max_delay=0), dns=DnsPolicy(enabled=False),
                failover=FailoverPolicy(enabled=False))


def plain(script, mode="legacy"):
    client = botocore.session.Session().create_client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"mode": mode, "max_attempts": 10}))
    region = Region("us-east-1", list(script))
    client.meta.events.register("before-send.dynamodb", region.before_send)
    return client, region


def test_a_wrapped_legacy_client_makes_max_attempts_not_its_own_ten():
    client, region = plain([503] * 10)
    hardened = resilient_aws.wrap(client, policy=POLICY)
    with contextlib.suppress(hardened.exceptions.ClientError):
        hardened.get_item(**KEY)
    assert len(region.sent) == 3


def test_a_client_wrapped_again_is_retried_by_its_newest_owner_only():
    client, region = plain([503])
    first = resilient_aws.wrap(client, policy=POLICY)
    second = resilient_aws.wrap(client, policy=POLICY)
    second.get_item(**KEY)
    assert len(region.sent) == 2
    assert second.stats()["retries"] == 1
    assert first.stats()["retries"] == 0


def test_wrapping_an_async_aiobotocore_style_client_is_refused_naming_the_client():
    # aiobotocore's clients are BaseClient subclasses whose operations are coroutines: wrapped, every call
    # would "succeed" with an un-awaited coroutine and no retry, breaker or failover would ever see it
    client, _ = plain([])

    async def _make_api_call(self, operation_name, api_params):  # pragma: no cover - never awaited
        return {}

    client.__class__ = type("AioDynamoDB", (type(client),), {"_make_api_call": _make_api_call})
    try:
        resilient_aws.wrap(client, policy=POLICY)
    except resilient_aws.ConfigError as exc:
        assert exc.field == "client" and "async" in str(exc)
    else:
        raise AssertionError("an async client was wrapped")
