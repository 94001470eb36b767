"""Typing: code annotated with boto3's stubs (types-boto3 / boto3-stubs) type-checks unchanged against a
resilient_aws.Session, a typo'd operation is an error, resilient_aws's own arguments and methods are typed,
and ``mypy --strict examples/`` passes (what ``make test`` runs).

``Session.client()`` returns ``Any`` on purpose: the caller's annotation (``DynamoDBClient`` from the
stubs, or ``resilient_aws.ResilientClient``) decides how the client is checked. ``Session.resource()`` is
boto3's, typed by the stubs. mypy runs from the repository root, on the working tree's package.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")
if importlib.util.find_spec("types_boto3_dynamodb") is None:
    pytest.skip("needs types-boto3[dynamodb]", allow_module_level=True)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


if not (_installed("types-boto3") or _installed("boto3-stubs")):
    pytest.skip("needs types-boto3 (or boto3-stubs): the typed boto3.Session", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$")

HEADER = """\
from __future__ import annotations

from typing import Any

from types_boto3_dynamodb import DynamoDBClient
from types_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table

import resilient_aws
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module (the first run analyses boto3's stubs and the package, ~10 s)."""
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(cache_dir: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context",
                           "--cache-dir", str(cache_dir), *targets],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def _check(tmp_path: Path, cache_dir: Path, body: str) -> tuple[int, list[tuple[int, str, str | None]]]:
    """mypy --strict on HEADER + ``body``: (exit status, [(line in body, message, code)] of the snippet's errors)."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(HEADER + textwrap.dedent(body))
    proc = _mypy(cache_dir, str(snippet))
    offset = HEADER.count("\n")
    errors = []
    for line in proc.stdout.splitlines():
        m = ERROR.match(line)
        if m is None:
            continue
        assert Path(m["path"]).resolve() == snippet.resolve(), proc.stdout  # the package itself stays clean
        errors.append((int(m["line"]) - offset, m["message"], m["code"]))
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2: mypy itself failed
    return proc.returncode, errors


def test_stub_annotations_and_resilient_aws_extras_type_check(tmp_path: Path, cache_dir: Path) -> None:
    status, errors = _check(tmp_path, cache_dir, """\
        def app(session: resilient_aws.Session) -> str:
            ddb: DynamoDBClient = session.client("dynamodb")
            dynamodb: DynamoDBServiceResource = session.resource("dynamodb")
            table: Table = dynamodb.Table("profiles")
            table.put_item(Item={"pk": "user-1"})
            failover: DynamoDBClient = session.client(
                "dynamodb", region_name="us-east-1", endpoint_urls={"us-west-2": "http://127.0.0.1:4566"},
                failover_regions=["us-west-2"])
            failover.put_item(TableName="profiles", Item={"pk": {"S": "user-2"}})
            resilient: resilient_aws.ResilientClient = session.client("dynamodb", failover_regions=())
            stats: dict[str, Any] = resilient.stats()
            regions: tuple[str, ...] = resilient.regions
            print(stats, regions)
            return ddb.get_item(TableName="profiles", Key={"pk": {"S": "user-1"}})["Item"]["name"]["S"]
        """)
    assert (status, errors) == (0, [])


def test_a_typo_or_a_wrong_argument_is_a_type_error(tmp_path: Path, cache_dir: Path) -> None:
    status, errors = _check(tmp_path, cache_dir, """\
        def app(session: resilient_aws.Session) -> None:
            ddb: DynamoDBClient = session.client("dynamodb")
            ddb.get_itme(TableName="profiles", Key={"pk": {"S": "user-1"}})
            ddb.get_item(TableName=1, Key={"pk": {"S": "user-1"}})
            table: Table = session.resource("dynamodb").Table("profiles")
            table.get_itme(Key={"pk": "user-1"})
            session.client("dynamodb", failover_region=["us-west-2"])
            resilient: resilient_aws.ResilientClient = session.client("dynamodb")
            calls: int = resilient.stats()
        """)
    assert status == 1
    by_line = {line: (message, code) for line, message, code in errors}
    assert len(errors) == len(by_line) == 5, errors
    assert by_line[3][1] == "attr-defined" and 'has no attribute "get_itme"' in by_line[3][0]
    assert by_line[4][1] == "arg-type" and '"TableName"' in by_line[4][0]
    assert by_line[6][1] == "attr-defined" and 'has no attribute "get_itme"' in by_line[6][0]
    assert by_line[7][1] == "call-arg" and '"failover_region"' in by_line[7][0]
    assert by_line[9][1] == "assignment" and '"dict[str, Any]"' in by_line[9][0]  # stats() is typed, not Any


# `mypy --strict examples` itself runs in `make test`, next to ruff (not repeated here).
