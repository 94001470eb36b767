"""Request bodies that behave like the awkward ones users pass: streams that cannot seek."""

from __future__ import annotations

import io


class OneWayStream(io.RawIOBase):
    """A body that can be read once and can neither seek nor tell its size, like a pipe or a socket."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._inner.readinto(buffer)
