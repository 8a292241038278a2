"""Read what a source holds, never more than a source may hold."""

from __future__ import annotations

import os
from typing import Any

from azexec.errors import TokenSourceError

#: A source may hold the token or a JSON document around it, never more than this.
MAX_SOURCE_BYTES = 1 << 20


class Limited:
    """Gather a source's bytes, refusing more than MAX_SOURCE_BYTES."""

    def __init__(self, origin: str, advice: str) -> None:
        self.origin = origin
        self.advice = advice
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        """Keep CHUNK, or fail when the source has grown too large."""
        self.size += len(chunk)
        self.check(self.size)
        self.chunks.append(chunk)

    def check(self, size: int) -> None:
        """Fail when SIZE bytes are more than a source may hold."""
        if size > MAX_SOURCE_BYTES:
            raise TokenSourceError(f"{self.origin} holds more than 1 MiB", self.advice)

    def data(self) -> bytes:
        """Return everything gathered."""
        return b"".join(self.chunks)


def read_fd(fd: int, origin: str) -> bytes:
    """Read FD to EOF, refusing more than MAX_SOURCE_BYTES."""
    gathered = Limited(origin, "point it at the token alone")
    while True:
        try:
            chunk = os.read(fd, 65536)
        except IsADirectoryError:
            raise TokenSourceError(f"{origin} is a directory", "name the file that holds the token") from None
        except OSError as e:
            raise TokenSourceError(f"{origin}: {e.strerror}", "check the source") from None
        if not chunk:
            return gathered.data()
        gathered.add(chunk)


#: JSON from outside nests no deeper than this: a token document is 1 deep, Resource Manager's listing 4.
MAX_JSON_DEPTH = 32


class TooDeep(ValueError):
    """Raised when JSON from outside nests deeper than MAX_JSON_DEPTH."""


def load_json(data: bytes | str, *, limit: int = MAX_SOURCE_BYTES) -> Any:
    """Parse DATA, JSON from outside azexec, refusing more than LIMIT bytes or MAX_JSON_DEPTH levels.

    Raise ValueError (TooDeep for the depth) for anything but a bounded, valid document. json's
    decoder is linear, and stops a deep one at the interpreter's recursion limit with RecursionError,
    which becomes TooDeep here; the depth of what it returns is then counted without recursion.
    """
    import json

    if len(data) > limit:
        raise ValueError(f"more than {limit} bytes")
    try:
        document = json.loads(data)
    except RecursionError:
        raise TooDeep("nested too deeply") from None
    level: list[Any] = [document]
    for _ in range(MAX_JSON_DEPTH):
        level = [child for node in level for child in _children(node)]
        if not level:
            return document
    raise TooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels")


def _children(node: Any) -> list[Any]:
    """Return the arrays and objects directly inside NODE."""
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    return [value for value in values if isinstance(value, (dict, list))]
