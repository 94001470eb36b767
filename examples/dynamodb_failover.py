"""Global-table reads that survive a primary-region outage.

A DynamoDB global table has a replica in us-east-1 and us-west-2. The client reads from us-east-1;
when it answers 503 or stops answering, reads move to us-west-2 within the same call, the circuit
breaker stops sending traffic to the dead region, and traffic returns when it heals. Writes stay in
the primary unless the policy allows them to move (global tables are last-writer-wins).

Run it (no AWS account needed; both regions run on loopback; needs ``pip install 'resilient-aws[drill]'``):

    python examples/dynamodb_failover.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import resilient_aws
from resilient_aws.testing import outage_drill

if TYPE_CHECKING:  # annotations only: pip install 'types-boto3[dynamodb]' to type-check, not to run
    from types_boto3_dynamodb import DynamoDBClient

POLICY = resilient_aws.Policy(
    # a short window and open time, so that this 10-second example shows the breaker opening and
    # traffic returning to the primary (defaults: 10 s window, 20 calls, open 5 s)
    breaker=resilient_aws.BreakerPolicy(window=2.0, min_calls=5, open_time=1.0, max_open_time=2.0),
)


def read_for(ddb: DynamoDBClient, seconds: float) -> tuple[int, int]:
    """Read for ``seconds``; return (ok, failed)."""
    ok = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            item = ddb.get_item(TableName="profiles", Key={"pk": {"S": "user-1"}})["Item"]
            assert item["name"]["S"] == "Ada"
            ok += 1
        except Exception:
            failed += 1
        time.sleep(0.02)
    return ok, failed


def main() -> int:
    with outage_drill(regions=["us-east-1", "us-west-2"]) as aws:   # loopback regions + DNS
        aws.create_table("profiles", [{"pk": {"S": "user-1"}, "name": {"S": "Ada"}}])  # in both regions

        session = aws.session(POLICY)  # = resilient_aws.Session(region_name="us-east-1",
        #                                    failover_regions=["us-west-2"], policy=POLICY, ...)
        # a resilient_aws.ResilientClient: a DynamoDBClient to read_for(), with stats() of its own
        ddb = session.client("dynamodb", endpoint_urls=aws.endpoint_urls())

        steps: list[tuple[str, Callable[[], None]]] = [
            ("healthy", lambda: None),
            ("us-east-1 answers 503", lambda: aws.fail("us-east-1", 503)),
            ("us-east-1 unreachable", lambda: aws.unreachable("us-east-1")),
            ("us-east-1 back", lambda: aws.restore("us-east-1")),
        ]
        failures = 0
        for title, action in steps:
            action()
            aws.reset_counts()
            ok, failed = read_for(ddb, 2.5)
            failures += failed
            east, west = aws.requests("us-east-1"), aws.requests("us-west-2")
            print(f"{title:<24} reads ok {ok:>4}, failed {failed}   "
                  f"requests seen by us-east-1 {east:>4}, by us-west-2 {west:>4}")
        s = ddb.stats()
        print(f"calls {s['calls']}, failed {s['failed']}, failovers {s['failovers']}, "
              f"us-east-1 breaker now {s['regions']['us-east-1']['breaker']}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
