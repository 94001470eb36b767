"""A boto3 program made resilient by changing one line.

The application code below (``recent_orders``) is ordinary boto3 code. The only change is where the
session comes from: ``resilient_aws.Session`` instead of ``boto3.Session``. Its clients have the
same methods, exceptions, paginators and waiters, and they keep working when the DynamoDB name stops
resolving, as ``dynamodb.us-east-1.amazonaws.com`` did on 2025-10-20.

Run it (no AWS account needed; everything runs on loopback; needs ``pip install 'resilient-aws[drill]'``):

    python examples/drop_in_session.py
"""

from __future__ import annotations

import boto3

import resilient_aws


def make_session(policy: resilient_aws.Policy | None = None) -> resilient_aws.Session:
    # Before:
    #   return boto3.Session(region_name="us-east-1")
    # After (the one line that changes; `policy` stays None in production: the defaults are sane):
    return resilient_aws.Session(boto3_session=boto3.Session(region_name="us-east-1"), policy=policy)


def recent_orders(session: boto3.Session, endpoint_url: str | None = None) -> list[str]:
    """Application code, unchanged: plain boto3 calls (``endpoint_url`` is None in production). With
    ``types-boto3[dynamodb]`` installed, a type checker sees ``ddb`` as a ``DynamoDBClient``."""
    ddb = session.client("dynamodb", endpoint_url=endpoint_url)
    pages = ddb.get_paginator("scan").paginate(TableName="orders")
    return sorted(item["pk"]["S"] for page in pages for item in page["Items"])


def main() -> int:
    # ---- loopback plumbing: a miniature AWS to run against; in production, none of this exists ----
    import os

    from resilient_aws.drill.baseline_dns import attach_uncached_dns
    from resilient_aws.testing import outage_drill

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with outage_drill(regions=["us-east-1"]) as aws:
        aws.create_table("orders", [{"pk": {"S": f"order-{i}"}} for i in range(3)])
        url = aws.endpoint_urls()["us-east-1"]  # http://dynamodb.us-east-1.drill.test:PORT
        # plain boto3 for comparison, resolving through the drill's DNS server like a stock process
        plain = boto3.Session(region_name="us-east-1")
        plain_ddb = plain.client("dynamodb", endpoint_url=url)
        attach_uncached_dns(plain_ddb, [aws.dns_host], aws.dns_port)
        # ---- end of plumbing ----

        session = make_session(policy=aws.policy())
        print("healthy:            ", recent_orders(session, url))

        aws.dns_empty("us-east-1")  # the 2025-10-20 failure: NOERROR, no records
        print("DNS record emptied: ", recent_orders(session, url), "(resilient_aws: last-known-good address)")
        try:
            plain_ddb.scan(TableName="orders")
            print("plain boto3:         still works?!")
            return 1
        except plain_ddb.exceptions.ClientError as e:  # pragma: no cover - not what happens
            print("plain boto3:         failed:", e)
            return 1
        except Exception as e:  # botocore.exceptions.EndpointConnectionError
            print(f"plain boto3:         {type(e).__name__}: the name does not resolve")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
