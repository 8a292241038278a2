"""The one place azexec writes to the user: its own lines ("azexec: …"), notes at a terminal, and raw bytes.

Every value in a message is already redacted (redact.show, redact.scrub); here
it is escaped, so that no value can drive the terminal, and prefixed.
"""

from __future__ import annotations

import contextlib
import os
import sys

#: What starts every line azexec prints, and every refusal the identity server sends.
PREFIX = "azexec: "


def line(message: str) -> str:
    """Return MESSAGE as one of azexec's lines: prefixed, every line of it escaped."""
    from azexec.redact import escape_lines

    return PREFIX + escape_lines(message)


def say(message: str) -> None:
    """Print MESSAGE as azexec's own line on stderr (nothing when stderr is closed)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a caller's closed stderr leaves sys.stderr None
        sys.stderr.write(line(message) + "\n")
        sys.stderr.flush()


def note(message: str) -> None:
    """Show MESSAGE on azexec's line of the terminal, or clear that line (an empty MESSAGE)."""
    text = line(message) if message else ""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(f"\r\x1b[K{text}")
        sys.stderr.flush()


def raw(data: bytes) -> None:
    """Pass DATA (a helper's stderr, already masked) on to azexec's stderr, fd 2 itself.

    fd 2, not sys.stderr: a caller's closed stderr leaves sys.stderr None (fd 2 is then /dev/null).
    """
    if data:
        with contextlib.suppress(OSError):
            os.write(2, data)
