"""The clients the drill compares, labelled by retry mode and botocore version, and the tag each of
their requests carries.

Why a module of its own: what is compared is the point of the drill, so it is stated in one place —
botocore in legacy retry mode (boto3's default on 2025-10-20), botocore in standard retry mode
(the default of the botocore installed here, 1.44 at the time of writing: the drill prints which
version and which default it found), and resilient_aws. The botocore clients resolve names through
the drill's DNS server on every new connection, without a cache, as a stock process does
(:mod:`~resilient_aws.drill.baseline_dns`).

Where aiobotocore is installed (the ``aio`` extra) two asyncio rows join them (:data:`AIO_CLIENTS`,
built and driven by :mod:`~resilient_aws.drill.aio`): plain aiobotocore with its default retries, and
``resilient_aws.aio``; without it the drill runs the three thread clients exactly as before.

Tags: every HTTP request carries :data:`~resilient_aws.testing.counters.TAG_HEADER` naming its client
and the phase its call started in, added after signing by a ``before-send`` handler; the servers
count requests per tag, so a retry landing in a later phase still counts for the call that made it.
The tag is a context variable: per thread for the thread clients, per task for the asyncio ones.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, Literal

from .config import PRIMARY, SECONDARY, TABLE, DrillConfig

__all__ = ["AIO_CLIENTS", "AIO_INSTALL", "ALL_CLIENTS", "CLIENTS", "RETRY_MODES", "aio_available", "botocore_info",
           "call_tag", "clients_for", "make_clients", "modes_line", "specs_for", "tagged", "warm_up"]

#: (label, DNS label, title) of the three thread clients, in table order.
CLIENTS: tuple[tuple[str, str, str], ...] = (
    ("legacy", "legacy", "botocore legacy"),
    ("standard", "standard", "botocore standard"),
    ("resilient", "resilient", "resilient_aws"),
)
#: (label, DNS label, title) of the asyncio clients, run where aiobotocore is installed.
AIO_CLIENTS: tuple[tuple[str, str, str], ...] = (
    ("aiobotocore", "aiobotocore", "aiobotocore"),
    ("aio", "aio", "resilient_aws.aio"),
)
ALL_CLIENTS: tuple[tuple[str, str, str], ...] = CLIENTS + AIO_CLIENTS
AIO_INSTALL = "pip install 'resilient-aws[aio]'"
#: The retry mode each plain botocore client is configured with.
RETRY_MODES: dict[str, Literal["legacy", "standard"]] = {"legacy": "legacy", "standard": "standard"}

#: The tag of the call in progress: a context variable, so each thread and each asyncio task has its own.
_tag: ContextVar[str | None] = ContextVar("resilient_aws_drill_tag", default=None)


def aio_available() -> bool:
    """Whether the asyncio rows can run here (aiobotocore importable), without importing it."""
    try:
        return importlib.util.find_spec("aiobotocore") is not None
    except (ImportError, ValueError):
        return False


def clients_for(cfg: DrillConfig) -> tuple[tuple[str, str, str], ...]:
    """The clients of a run, in table order: ``cfg.clients`` (every known one by default), the asyncio
    ones only when ``cfg.aio`` allows and aiobotocore is installed. Raises ``ValueError`` for an
    asyncio client asked for by name (or ``aio=True``) where aiobotocore is missing."""
    aio = cfg.aio if cfg.aio is not None else aio_available()
    if aio and not aio_available():
        raise ValueError(f"the asyncio rows need aiobotocore, which is not installed: {AIO_INSTALL}")
    wanted = set(cfg.clients) if cfg.clients is not None else {label for label, _, _ in ALL_CLIENTS}
    asked_aio = wanted & {label for label, _, _ in AIO_CLIENTS}
    if cfg.clients is not None and asked_aio and not aio:
        raise ValueError(f"{sorted(asked_aio)} need aiobotocore, which is not installed (or aio=False): {AIO_INSTALL}")
    return tuple(s for s in (CLIENTS + AIO_CLIENTS if aio else CLIENTS) if s[0] in wanted)


def specs_for(labels: Iterable[str]) -> tuple[tuple[str, str, str], ...]:
    """The (label, DNS label, title) of ``labels``, in table order."""
    chosen = set(labels)
    return tuple(s for s in ALL_CLIENTS if s[0] in chosen)


def call_tag(label: str, phase: int) -> str:
    """The tag of the requests a call of client ``label`` started in phase ``phase`` makes."""
    return f"{label}|{phase}"


@contextlib.contextmanager
def tagged(label: str, phase: int) -> Iterator[None]:
    """Tag the requests this thread (or asyncio task) makes inside the block."""
    token = _tag.set(call_tag(label, phase))
    try:
        yield
    finally:
        _tag.reset(token)


def _tag_request(request: Any, **kwargs: Any) -> None:
    """``before-send`` handler: label the request with the client and phase of the call in progress
    on this thread or task. Runs after signing, so the signature is untouched."""
    tag = _tag.get()
    if tag is not None:
        from ..testing.counters import TAG_HEADER

        request.headers[TAG_HEADER] = tag


def make_clients(drill: Any, cfg: DrillConfig) -> dict[str, Any]:
    """``{label: client}`` for the thread clients of :func:`clients_for` (of :data:`CLIENTS`), aimed at
    ``drill`` (an ``OutageDrill``), each with DNS names of its own so that the DNS server counts each
    client's queries apart."""
    import botocore.session
    from botocore.config import Config

    from ..session import Session
    from ..testing.tables import TEST_CREDENTIALS
    from .baseline_dns import attach_uncached_dns

    clients: dict[str, Any] = {}
    dns_host, dns_port = drill.dns.host, drill.dns.port
    threaded = {label for label, _, _ in CLIENTS}
    for label, dns_label, _ in clients_for(cfg):
        if label not in threaded:
            continue  # an asyncio client: resilient_aws.drill.aio makes those
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
            policy = drill_policy(drill, cfg)
            resilient = Session(region_name=PRIMARY, failover_regions=[SECONDARY], policy=policy,
                                botocore_session=bc, aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
                                aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"])
            clients[label] = resilient.client("dynamodb", endpoint_urls=urls,
                                              config=Config(max_pool_connections=cfg.threads))
    return clients


def drill_policy(drill: Any, cfg: DrillConfig) -> Any:
    """resilient_aws's policy in the drill (thread and asyncio clients alike): the default ``Policy``
    aimed at the drill's DNS server, with a breaker open time that lets recovery fit in the drill, and
    PutItem allowed to fail over (the drill's writes are idempotent puts of distinct keys)."""
    from ..policy import BreakerPolicy, FailoverPolicy, Policy

    open_time = cfg.breaker_open_time
    return drill.policy(Policy(
        breaker=BreakerPolicy(open_time=open_time, max_open_time=2 * open_time),
        failover=FailoverPolicy(operations=frozenset({"PutItem"})),
    ))


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
