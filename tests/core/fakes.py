"""A scripted stand-in for a botocore client, for unit tests of the retry loop only.

The claims in the README are proven against real servers in tests/integration; this fake exists so
that the loop's arithmetic (attempt counts, budget, deadline) can be checked quickly and exhaustively.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

from botocore.exceptions import ClientError, EndpointConnectionError

import resilient_aws
from resilient_aws.client import ResilientClient
from resilient_aws.events import Emitter
from resilient_aws.regions import HealthRegistry, RegionLane

OPS = {"get_item": "GetItem", "put_item": "PutItem", "query": "Query"}


def server_error(status: int = 503, code: str = "ServiceUnavailable") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}, "GetItem")


def caller_error(code: str = "ValidationException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}}}, "GetItem")


def refused() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


class FakeClient:
    """Each operation pops the next outcome (an exception to raise, or a value to return);
    when the script is empty it returns ``default``."""

    def __init__(self, region: str, script=(), default=None):
        self.region = region
        self.script = list(script)
        self.default = {"ok": region} if default is None else default
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self.meta = SimpleNamespace(method_to_api_mapping=dict(OPS), region_name=region)
        self.exceptions = SimpleNamespace()
        for py_name in OPS:
            setattr(self, py_name, self._op(py_name))

    def _op(self, py_name):
        def op(**kwargs):
            with self._lock:
                self.calls.append(py_name)
                outcome = self.script.pop(0) if self.script else self.default
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return op


def make_client(policy=None, scripts=None, regions=("us-east-1", "us-west-2")):
    policy = policy or resilient_aws.Policy()
    emitter = Emitter()
    registry = HealthRegistry(policy, emitter)
    fakes = {r: FakeClient(r, (scripts or {}).get(r, ())) for r in regions}
    lanes = [RegionLane(r, registry.get("dynamodb", r), lambda region: fakes[region]) for r in regions]
    client = ResilientClient("dynamodb", lanes, policy, emitter)
    return client, fakes
