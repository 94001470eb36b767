"""Leave moto's in-process data as a test module found it.

Why: moto keeps one backend per account and region for the whole process, shared by every moto server
in it (``resilient_aws.testing``'s endpoints and a test's own ``ThreadedMotoServer`` alike). A table a
test module creates is therefore seen by every module that runs after it in the same pytest process,
and a later test that lists tables (``tests/integration/test_fault_proxy.py``) finds it. Tables are
deleted through moto's HTTP API, as a client would, not by reaching into moto's internals.

    @pytest.fixture(scope="module", autouse=True)
    def _no_tables_left_behind():
        with tables_left_as_found():
            yield
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from resilient_aws.testing.aws import LoopbackEndpoint, plain_client

#: The regions the drill tests create tables in (the drill's two and the marker test's two).
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1")


def _tables(url: str, regions: Sequence[str]) -> set[tuple[str, str]]:
    found = set()
    for region in regions:
        pages = plain_client("dynamodb", region, url).get_paginator("list_tables").paginate()
        found.update((region, name) for page in pages for name in page["TableNames"])
    return found


@contextlib.contextmanager
def tables_left_as_found(regions: Sequence[str] = REGIONS) -> Iterator[None]:
    """Delete, on exit, the DynamoDB tables created in ``regions`` inside the block."""
    with LoopbackEndpoint() as ep:
        before = _tables(ep.url, regions)
    try:
        yield
    finally:
        with LoopbackEndpoint() as ep:
            for region, name in sorted(_tables(ep.url, regions) - before):
                plain_client("dynamodb", region, ep.url).delete_table(TableName=name)
