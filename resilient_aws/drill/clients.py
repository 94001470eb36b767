"""The three clients the drill compares, labelled by retry mode and botocore version, and the tag
each of their requests carries.

Why a module of its own: what is compared is the point of the drill, so it is stated in one place —
botocore in legacy retry mode (boto3's default on 2025-10-20), botocore in standard retry mode
(the default of the botocore installed here, 1.44 at the time of writing: the drill prints which
version and which default it found), and resilient_aws. The botocore clients resolve names through
the drill's DNS server on every new connection, without a cache, as a stock process does
(:mod:`~resilient_aws.drill.baseline_dns`).

Tags: every HTTP request carries :data:`~resilient_aws.testing.counters.TAG_HEADER` naming its client
and the phase its call started in, added after signing by a ``before-send`` handler; the servers
count requests per tag, so a retry landing in a later phase still counts for the call that made it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any, Literal

from .config import PRIMARY, SECONDARY, TABLE, DrillConfig

__all__ = ["CLIENTS", "RETRY_MODES", "botocore_info", "call_tag", "make_clients", "modes_line", "tagged", "warm_up"]

#: (label, DNS label, title) of the three clients, in table order.
CLIENTS: tuple[tuple[str, str, str], ...] = (
    ("legacy", "legacy", "botocore legacy"),
    ("standard", "standard", "botocore standard"),
    ("resilient", "resilient", "resilient_aws"),
)
#: The retry mode each plain botocore client is configured with.
RETRY_MODES: dict[str, Literal["legacy", "standard"]] = {"legacy": "legacy", "standard": "standard"}

_tag_state = threading.local()


def call_tag(label: str, phase: int) -> str:
    """The tag of the requests a call of client ``label`` started in phase ``phase`` makes."""
    return f"{label}|{phase}"


@contextlib.contextmanager
def tagged(label: str, phase: int) -> Iterator[None]:
    """Tag the requests this thread makes inside the block."""
    _tag_state.tag = call_tag(label, phase)
    try:
        yield
    finally:
        _tag_state.tag = None


def _tag_request(request: Any, **kwargs: Any) -> None:
    """``before-send`` handler: label the request with the client and phase of the call in progress
    on this thread. Runs after signing, so the signature is untouched."""
    tag = getattr(_tag_state, "tag", None)
    if tag is not None:
        from ..testing.counters import TAG_HEADER

        request.headers[TAG_HEADER] = tag


def make_clients(drill: Any, cfg: DrillConfig) -> dict[str, Any]:
    """``{label: client}`` for :data:`CLIENTS`, aimed at ``drill`` (an ``OutageDrill``), each with DNS
    names of its own so that the DNS server counts each client's queries apart."""
    import botocore.session
    from botocore.config import Config

    from ..policy import BreakerPolicy, FailoverPolicy, Policy
    from ..session import Session
    from ..testing.tables import TEST_CREDENTIALS
    from .baseline_dns import attach_uncached_dns

    clients: dict[str, Any] = {}
    dns_host, dns_port = drill.dns.host, drill.dns.port
    for label, dns_label, _ in CLIENTS:
        urls = drill.endpoint_urls("dynamodb", label=dns_label)
        if label in RETRY_MODES:
            session = botocore.session.get_session()
            client = session.create_client("dynamodb", region_name=PRIMARY, endpoint_url=urls[PRIMARY],
                                           config=Config(retries={"mode": RETRY_MODES[label]},
                                                         max_pool_connections=cfg.threads),
                                           aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
                                           aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"])
            attach_uncached_dns(client, [dns_host], dns_port, timeout=1.0)
            client.meta.events.register("before-send.dynamodb", _tag_request)
            clients[label] = client
        else:
            bc = botocore.session.get_session()
            # inherited by the per-region clients; botocore calls handlers with keyword arguments only
            # (request=...), which botocore-stubs' handler protocol (**kwargs only) cannot express
            bc.register("before-send.dynamodb", _tag_request)  # type: ignore[arg-type]
            open_time = cfg.breaker_open_time
            policy = drill.policy(Policy(
                breaker=BreakerPolicy(open_time=open_time, max_open_time=2 * open_time),
                failover=FailoverPolicy(operations=frozenset({"PutItem"})),
            ))
            resilient = Session(region_name=PRIMARY, failover_regions=[SECONDARY], policy=policy,
                                botocore_session=bc, aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
                                aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"])
            clients[label] = resilient.client("dynamodb", endpoint_urls=urls,
                                              config=Config(max_pool_connections=cfg.threads))
    return clients


def warm_up(clients: dict[str, Any]) -> None:
    """One read per client before the clock starts: connection set-up and the first DNS answer are
    not what the drill measures (and resilient_aws needs one good answer to keep)."""
    for client in clients.values():
        with contextlib.suppress(Exception):
            client.get_item(TableName=TABLE, Key={"pk": {"S": "k000"}})


def botocore_info() -> dict[str, str]:
    """The botocore the drill ran on: ``version``, ``default_retry_mode`` (what a client created without
    a retries config gets in this process) and ``default_from`` (``botocore``, ``AWS_RETRY_MODE`` or
    ``config file``)."""
    import botocore
    import botocore.session

    session = botocore.session.get_session()
    try:
        client = session.create_client("dynamodb", region_name=PRIMARY, aws_access_key_id="x",
                                       aws_secret_access_key="x")
        # Config sets its options as attributes at run time; botocore-stubs do not declare them
        mode = str(client.meta.config.retries.get("mode", "legacy"))  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - informational only
        mode = "unknown"
    if os.environ.get("AWS_RETRY_MODE"):
        source = "AWS_RETRY_MODE"
    else:
        try:
            source = "config file" if session.get_scoped_config().get("retry_mode") else "botocore"
        except Exception:  # a profile named in the environment but missing: botocore's own default
            source = "botocore"
    return {"version": botocore.__version__, "default_retry_mode": mode, "default_from": source}


def modes_line(info: dict[str, str]) -> str:
    """One line naming the botocore version and what each botocore row runs, e.g. ``botocore 1.44.8:
    "botocore legacy" = retry mode legacy (boto3's default on 2025-10-20), "botocore standard" = ...``."""
    default, source = info.get("default_retry_mode", "unknown"), info.get("default_from", "botocore")
    where = "this botocore's default" if source == "botocore" else f"the default here, set by {source}"

    def role(mode: str) -> str:
        parts = ["boto3's default on 2025-10-20"] if mode == "legacy" else []
        if mode == default:
            parts.append(where)
        return f" ({'; '.join(parts)})" if parts else ""

    rows = ", ".join(f'"{title}" = retry mode {RETRY_MODES[label]}{role(RETRY_MODES[label])}'
                     for label, _, title in CLIENTS if label in RETRY_MODES)
    line = f"botocore {info.get('version', '?')}: {rows}"
    if default not in RETRY_MODES.values():
        line += f"; a client without a retries config gets {default} mode here ({source})"
    return line
