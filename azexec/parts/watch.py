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

    def __init__(self, expires_at: float, *, warn: Say, diagnose: Say, clock: Callable[[], float] = time.time) -> None:
        self.expires_at = expires_at
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
        if code is None:
            return
        message = diagnosis(expires_at=self.expires_at, started=self.started, code=code, now=self.clock())
        if message:
            self.diagnose(message)

    def _warn_when_due(self) -> None:
        for event in schedule(self.expires_at, self.started):
            while (remaining := event.due - self.clock()) > 0:
                if self.done.wait(min(remaining, MAX_WAIT_SECONDS)):
                    return
            # A closed stderr must not end the thread with a traceback.
            with contextlib.suppress(OSError, ValueError):
                self.warn(event.message)
