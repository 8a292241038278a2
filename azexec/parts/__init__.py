"""Resident parts: what lives beside COMMAND when azexec stays as its parent.

Each part gets a Context when it starts (the environment so far, the caller's
signal mask, the standard descriptors the caller closed, a way to report a
failure) and returns what it Adds; supervise.py starts them in list order, so
what one part adds (the identity server's endpoint) is in the next one's
context. A part never imports another part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from azexec.errors import PartFailed

#: A descriptor of azexec's to dup2 onto a descriptor of COMMAND's.
Redirection = tuple[int, int]
#: Print one line of azexec's own (a warning, a diagnosis).
Say = Callable[[str], None]


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


class Added(NamedTuple):
    """What a part adds for COMMAND."""

    #: Variables to set, or to remove (None).
    env: tuple[tuple[str, str | None], ...] = ()
    redirections: tuple[Redirection, ...] = ()


class Part(Protocol):
    """Something resident mode runs beside COMMAND: started before it, stopped after it."""

    def start(self, context: Context) -> Added:
        """Prepare, before COMMAND starts; return what COMMAND gets from this part."""

    def running(self) -> None:
        """COMMAND has started."""

    def stop(self, code: int | None) -> None:
        """COMMAND has exited with CODE (None: it never started); clean up."""
