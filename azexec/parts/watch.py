"""The expiry watch: a resident part that warns while COMMAND runs and explains a failure after."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from azexec.parts import Added, Context, Preview, Say
from azexec.token import WARN_REMAINING_SECONDS, describe_span, format_utc

#: The longest single wait: longer ones overflow the platform's clock types.
MAX_WAIT_SECONDS = 86400.0
#: With a token the identity server may replace, how often the watch looks whether the one held changed.
RECHECK_SECONDS = 5.0


class Event(NamedTuple):
    """A warning due at a moment."""

    due: float
    message: str


def schedule(expires_at: float, now: float) -> list[Event]:
    """Return when to warn: WARN_REMAINING_SECONDS before expiry (if still ahead), and at expiry."""
    events = []
    if expires_at - WARN_REMAINING_SECONDS > now:
        soon = (
            f"the access token expires in {describe_span(WARN_REMAINING_SECONDS)} ({format_utc(expires_at)}) "
            "and COMMAND is still running"
        )
        events.append(Event(expires_at - WARN_REMAINING_SECONDS, soon))
    events.append(Event(expires_at, f"the access token expired ({format_utc(expires_at)}) while COMMAND is running"))
    return events


def diagnosis(*, expires_at: float, started: float, code: int, now: float) -> str | None:
    """Say why COMMAND may have failed: the token expired while it ran."""
    if code == 0 or now < expires_at:
        return None
    return (
        f"the access token expired {describe_span(expires_at - started)} into the run; "
        "COMMAND's failure may be an authentication error"
    )


class ExpiryWatch:
    """Warn on a thread of its own as the token nears and reaches expiry; explain a failure after."""

    def __init__(
        self,
        expires_at: float | Callable[[], float],
        *,
        warn: Say,
        diagnose: Say,
        covered: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Watch EXPIRES_AT: a time, or (the identity server) a function giving the held token's.

        While COVERED() is true (the identity server refreshes the token), nothing is said.
        """
        #: Whether the token watched is the one COMMAND started with, for good.
        self.fixed = not callable(expires_at)
        self.expiry: Callable[[], float] = expires_at if callable(expires_at) else lambda: expires_at
        self.covered = covered or (lambda: False)
        self.warn = warn
        self.diagnose = diagnose
        self.clock = clock
        self.done = threading.Event()
        self.started = clock()
        self.thread: threading.Thread | None = None

    def preview(self, env: Mapping[str, str]) -> Preview:
        """Nothing to add: it warns while COMMAND runs."""
        return Preview("expiry watch")

    def start(self, context: Context) -> Added:
        """Change nothing of COMMAND's environment or descriptors."""
        self.started = self.clock()
        return Added()

    def running(self) -> None:
        """Start warning, now that COMMAND runs."""
        self.thread = threading.Thread(target=self._warn_when_due, daemon=True)
        self.thread.start()

    def stop(self, code: int | None) -> None:
        """Stop warning; say why COMMAND may have failed (CODE None: it never ran)."""
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        if code is None or self.covered():
            return
        message = diagnosis(expires_at=self.expiry(), started=self.started, code=code, now=self.clock())
        if message:
            self.diagnose(message)

    def _warn_when_due(self) -> None:
        """Say each event when due, for the token held then; drop one that a working refresh covers."""
        said: set[tuple[float, str]] = set()
        # A token the identity server may replace is looked at again now and then: its expiry may move.
        recheck = MAX_WAIT_SECONDS if self.fixed else RECHECK_SECONDS
        while True:
            expires_at = self.expiry()
            pending = [e for e in schedule(expires_at, self.started) if (expires_at, e.message) not in said]
            if not pending and self.fixed:
                return
            wait = min(pending[0].due - self.clock(), recheck) if pending else recheck
            if wait > 0:
                if self.done.wait(wait):
                    return
                continue
            said.add((expires_at, pending[0].message))
            if not self.covered():
                # A closed stderr must not end the thread with a traceback.
                with contextlib.suppress(OSError, ValueError):
                    self.warn(pending[0].message)
