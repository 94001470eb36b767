"""The DNS layer as the core uses it: one cache per Session, attached to every per-region client."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError
from support.dns import NAME, ZONE

import resilient_aws
from resilient_aws.dns import is_attached

pytestmark = pytest.mark.integration
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def session(dns_server, **dns_fields) -> resilient_aws.Session:
    dns = resilient_aws.DnsPolicy(nameservers=["127.0.0.1"], port=dns_server.port, timeout=0.5, **dns_fields)
    return resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"],
                                 policy=resilient_aws.Policy(dns=dns), **CREDS)


def test_every_region_client_of_a_session_shares_one_attached_cache(dns_server, moto_port):
    dns_server.set(NAME, a=["127.0.0.1"], ttl=30)
    s = session(dns_server)
    ddb = s.client("dynamodb", endpoint_urls={"us-east-1": f"http://{NAME}:{moto_port}",
                                              "us-west-2": f"http://127.0.0.1:{moto_port}"})
    other = s.client("dynamodb", endpoint_urls={"us-east-1": f"http://{NAME}:{moto_port}",
                                                "us-west-2": f"http://127.0.0.1:{moto_port}"})
    assert "TableNames" in ddb.list_tables()
    assert all(is_attached(lane.client()) for lane in ddb._lanes)
    assert ddb._dns_cache is other._dns_cache
    assert ddb.stats()["dns"]["names_cached"] == 1


def test_dns_disabled_leaves_botocore_untouched(dns_server, moto_port):
    s = session(dns_server, enabled=False)
    ddb = s.client("dynamodb", endpoint_urls={"us-east-1": f"http://127.0.0.1:{moto_port}",
                                              "us-west-2": f"http://127.0.0.1:{moto_port}"})
    assert "TableNames" in ddb.list_tables()
    assert not any(is_attached(lane.client()) for lane in ddb._lanes)
    assert ddb.stats()["dns"] is None
    assert dns_server.count() == 0


def test_a_dead_name_with_no_region_left_is_an_endpoint_connection_error(dns_server, moto_port):
    s = session(dns_server)
    ddb = s.client("dynamodb", endpoint_urls={"us-east-1": f"http://missing.{ZONE}:{moto_port}"},
                   failover_regions=[])
    with pytest.raises(EndpointConnectionError):
        ddb.list_tables()


def test_closing_a_session_persists_its_dns_answers(dns_server, moto_port, tmp_path):
    import json

    dns_server.set(NAME, a=["127.0.0.1"], ttl=30)
    path = tmp_path / "lkg.json"
    with session(dns_server, persist_path=str(path)) as s:
        ddb = s.client("dynamodb", endpoint_urls={"us-east-1": f"http://{NAME}:{moto_port}",
                                                  "us-west-2": f"http://127.0.0.1:{moto_port}"})
        assert "TableNames" in ddb.list_tables()
    assert NAME in json.loads(path.read_text())["names"]
