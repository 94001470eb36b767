"""What a call's parameters need before the call may be sent again by another region's client.

Inside one region botocore repeats a request itself (see ``retry.py``). A move to another region is
a new call on another botocore client, built from the caller's parameters again, so two things are
fixed *before the first attempt*:

- idempotency tokens (members the service model marks ``idempotencyToken``, e.g. DynamoDB's
  ``ClientRequestToken``): botocore would generate a new one for the new call, and a transaction sent
  with two tokens may apply twice. The token is generated once, the way botocore does (a UUID4), and
  kept in the parameters of every attempt;
- streamed bodies (blob members given as file-like objects): their start position is remembered and
  restored before each new call. A body that cannot seek cannot be sent twice, so such a call stays in
  its region (where botocore can still make its one attempt).

DynamoDB strongly consistent reads (``ConsistentRead=True``, in ``BatchGetItem`` per table, and
``TransactGetItems``, which is always serializable) stay in their region unless the policy allows
them to move: a replica in another region answers from its own, possibly older, copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Operations whose answer is strongly consistent whatever their parameters say.
ALWAYS_CONSISTENT: frozenset[str] = frozenset({"TransactGetItems"})


@dataclass(frozen=True, slots=True)
class OperationShape:
    """What the planner needs to know about one operation's input, read once from the model."""

    token_members: tuple[str, ...] = ()
    body_members: tuple[str, ...] = ()
    consistent_read: bool = False       # has a top-level ConsistentRead member (GetItem, Query, Scan)
    per_table_consistent_read: bool = False  # ConsistentRead inside RequestItems (BatchGetItem)
    always_consistent: bool = False

    @property
    def needs_preparing(self) -> bool:
        return bool(self.token_members or self.body_members)

    @property
    def may_read_consistently(self) -> bool:
        return self.consistent_read or self.per_table_consistent_read or self.always_consistent


def operation_shape(operation_model: Any) -> OperationShape:
    shape = operation_model.input_shape
    members = dict(shape.members) if shape is not None else {}
    tokens = tuple(operation_model.idempotent_members or ())
    bodies = tuple(name for name, member in members.items() if member.type_name == "blob")
    return OperationShape(token_members=tokens, body_members=bodies, consistent_read="ConsistentRead" in members,
                          per_table_consistent_read=_per_table_consistent_read(members.get("RequestItems")),
                          always_consistent=operation_model.name in ALWAYS_CONSISTENT)


def _per_table_consistent_read(member: Any) -> bool:
    """BatchGetItem: ``RequestItems`` maps table names to structures with a ConsistentRead member."""
    value = getattr(member, "value", None)
    return value is not None and "ConsistentRead" in getattr(value, "members", {})


def reads_consistently(shape: OperationShape, kwargs: Mapping[str, Any]) -> bool:
    """Does this call ask for a strongly consistent read?"""
    if shape.always_consistent:
        return True
    if kwargs.get("ConsistentRead") is True:
        return True
    items = kwargs.get("RequestItems")
    if isinstance(items, Mapping):
        return any(isinstance(v, Mapping) and v.get("ConsistentRead") is True for v in items.values())
    return False


@dataclass(slots=True)
class Prepared:
    """The parameters every attempt of a movable call uses, and how to restore its bodies."""

    kwargs: dict[str, Any]
    bodies: tuple[tuple[Any, int], ...]
    movable: bool

    def rewind(self) -> None:
        """Put every streamed body back where the caller gave it to us."""
        for body, position in self.bodies:
            body.seek(position)


def prepare(shape: OperationShape, kwargs: dict[str, Any]) -> Prepared:
    """Pin idempotency tokens and remember body positions; the caller's dict is not modified."""
    fixed = dict(kwargs)
    for name in shape.token_members:
        if name not in fixed:
            fixed[name] = str(uuid.uuid4())  # what botocore's generate_idempotent_uuid does
    bodies: list[tuple[Any, int]] = []
    movable = True
    for name in shape.body_members:
        body = fixed.get(name)
        if body is None or isinstance(body, (bytes, bytearray, str)):
            continue
        position = _position(body)
        if position is None:
            movable = False  # cannot be sent twice: one region only
        else:
            bodies.append((body, position))
    return Prepared(fixed, tuple(bodies), movable)


def _position(body: Any) -> int | None:
    try:
        seekable = body.seekable() if hasattr(body, "seekable") else hasattr(body, "seek")
        return body.tell() if seekable else None
    except (OSError, ValueError, AttributeError):
        return None
