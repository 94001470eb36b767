"""The asyncio suite (``tests/aio``) needs aiobotocore, which pins its own botocore: it runs in
``.venv-aio`` (``make test`` runs both suites). Where aiobotocore is not installed it is not collected."""

from importlib.util import find_spec

collect_ignore = [] if find_spec("aiobotocore") is not None else ["aio"]
