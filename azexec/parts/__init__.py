"""Resident parts: what lives beside COMMAND when azexec stays as its parent.

Each part gets a Context when it starts (the environment so far, the caller's
signal mask, the standard descriptors the caller closed, a way to report a
failure) and returns what it Adds; supervise.py starts them in list order, so
what one part adds (the identity server's endpoint) is in the next one's
context. A part never imports another part.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from azexec.redact import REPLACEMENT

if TYPE_CHECKING:
    from azexec.errors import PartFailed
    from azexec.redact import Secret

#: A descriptor of azexec's to dup2 onto a descriptor of COMMAND's.
Redirection = tuple[int, int]
#: Print one line of azexec's own (a warning, a diagnosis).
Say = Callable[[str], None]


class Secrets:
    """Every token azexec hands out in this run (the first, per resource, refreshed); safe across threads.

    --mask replaces each in COMMAND's output, and a token command's stderr is passed on with each replaced.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: tuple[bytes, ...] = ()

    def add(self, secret: Secret) -> None:
        """Mask SECRET from now on."""
        value = secret.reveal().encode()
        with self.lock:
            if value not in self.current:
                # Longest first: a token that contains another is replaced whole.
                self.current = tuple(sorted((*self.current, value), key=len, reverse=True))

    def __call__(self) -> tuple[bytes, ...]:
        """Return the tokens to mask now."""
        return self.current

    def mask(self, data: bytes) -> bytes:
        """Return DATA, a whole message, with every token replaced."""
        for value in self.current:
            data = data.replace(value, REPLACEMENT)
        return data


class Context(NamedTuple):
    """What a part is handed when it starts."""

    #: COMMAND's environment so far, with what earlier parts added.
    env: Mapping[str, str]
    #: The caller's signal mask, for the processes a part starts (resident mode blocks more).
    caller_mask: frozenset[int]
    #: The standard descriptors the caller left closed; they stay closed for COMMAND.
    closed_fds: tuple[int, ...]
    #: Report a failure while COMMAND runs, from any thread: COMMAND is stopped and azexec exits 125.
    fail: Callable[[PartFailed], None]
    #: Every token handed out: a part that hands one out adds it; the mask replaces them all.
    secrets: Secrets


class Added(NamedTuple):
    """What a part adds for COMMAND."""

    #: Variables to set, or to remove (None).
    env: tuple[tuple[str, str | None], ...] = ()
    redirections: tuple[Redirection, ...] = ()


class Preview(NamedTuple):
    """What a part would do, said without doing it (--dry-run)."""

    #: Its name in the report.
    name: str
    #: Variables it would set (a placeholder where the value is made at start) or remove (None).
    env: tuple[tuple[str, str | None], ...] = ()
    #: What it would run before COMMAND.
    steps: tuple[str, ...] = ()
    #: Why it would fail (azexec would exit 125), or None.
    failure: str | None = None


class Part(Protocol):
    """Something resident mode runs beside COMMAND: started before it, stopped after it."""

    def preview(self, env: Mapping[str, str]) -> Preview:
        """Say what start() would do in ENV, doing nothing."""

    def start(self, context: Context) -> Added:
        """Prepare, before COMMAND starts; return what COMMAND gets from this part."""

    def running(self) -> None:
        """COMMAND has started."""

    def stop(self, code: int | None) -> None:
        """COMMAND has exited with CODE (None: it never started); clean up."""
