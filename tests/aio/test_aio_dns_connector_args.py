"""connector_args(): the connector settings that route an aiobotocore client through a CachedResolver
while keeping the user's own (``AioConfig.merge`` replaces ``connector_args`` wholesale)."""

from __future__ import annotations

import pytest

from resilient_aws.aio.resolver import CachedResolver, connector_args
from resilient_aws.dns import DnsCache
from resilient_aws.errors import ConfigError
from resilient_aws.policy import DnsPolicy


@pytest.fixture
def args_resolver() -> CachedResolver:
    return CachedResolver(DnsCache(DnsPolicy(nameservers=["127.0.0.1"])))


def test_the_users_other_connector_args_are_kept(args_resolver):
    args = connector_args(args_resolver, {"limit": 7, "keepalive_timeout": 3})
    assert args == {"limit": 7, "keepalive_timeout": 3, "resolver": args_resolver, "use_dns_cache": False}


def test_aiohttps_own_dns_cache_is_turned_off(args_resolver):
    assert connector_args(args_resolver, {"use_dns_cache": True, "ttl_dns_cache": 600})["use_dns_cache"] is False
    assert connector_args(args_resolver, None) == {"resolver": args_resolver, "use_dns_cache": False}


def test_a_resolver_of_the_users_own_is_refused(args_resolver):
    theirs = CachedResolver(args_resolver.cache)
    with pytest.raises(ConfigError, match="resolver") as info:
        connector_args(args_resolver, {"resolver": theirs})
    assert info.value.field == "config"


def test_the_same_resolver_again_is_accepted(args_resolver):
    once = connector_args(args_resolver, {"limit": 7})
    assert connector_args(args_resolver, once) == once
