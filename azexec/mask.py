"""Mask the token in COMMAND's output as it streams, without holding lines back."""

from __future__ import annotations

import os
import select
import threading
import time

REPLACEMENT = b"***"
#: As much as a pipe holds at once: one read per wake-up, few Python steps per MiB.
CHUNK = 1 << 16
#: After COMMAND exits, how long more output is waited for once what it left
#: in the pipe has been passed on. Only a process COMMAND left behind (a
#: background job) writes then, and azexec must not hang on it: exec would
#: have returned already.
STRAGGLER_SECONDS = 1.0


class Masker:
    """Replace every occurrence of a secret in a byte stream fed in arbitrary pieces.

    Only the end of the stream that could still grow into the secret is held
    back, so a line that cannot be part of the token is passed on at once.
    """

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.first = secret[:1]
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        """Return what can be written now of CHUNK, masked."""
        data = (self.held + chunk if self.held else chunk).replace(self.secret, REPLACEMENT)
        keep = self._partial_suffix(data)
        if keep:
            self.held = data[-keep:]
            return data[:-keep]
        self.held = b""
        return data

    def flush(self) -> bytes:
        """Return what was held back, at the end of the stream."""
        held, self.held = self.held, b""
        return held

    def _partial_suffix(self, data: bytes) -> int:
        """Return the length of the longest end of DATA that begins the secret."""
        position = data.find(self.first, max(0, len(data) - len(self.secret) + 1))
        while position != -1:
            if self.secret.startswith(data[position:]):
                return len(data) - position
            position = data.find(self.first, position + 1)
        return 0


def pump(source: int, target: int, secret: bytes, exited: int) -> None:
    """Copy SOURCE to TARGET, masking SECRET, until EOF or until COMMAND's output is through; close SOURCE.

    EXITED becomes readable when COMMAND has exited. Everything COMMAND wrote
    is then in the pipe: that much is passed on however slowly TARGET reads;
    whatever a leftover background job writes later gets STRAGGLER_SECONDS.
    """
    masker = Masker(secret)
    owed: int | None = None  # bytes COMMAND left in the pipe, once it has exited
    deadline = 0.0
    try:
        while True:
            if owed is None:
                ready = select.select([source, exited], [], [])[0]
                if exited in ready:
                    owed, deadline = _pending(source), time.monotonic() + STRAGGLER_SECONDS
                    continue
            elif owed <= 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([source], [], [], remaining)[0]:
                    break
            chunk = os.read(source, CHUNK)
            if not chunk:
                break
            if owed is not None:
                owed -= len(chunk)
            if not _write_all(target, masker.feed(chunk)):
                # Closing our end gives COMMAND the SIGPIPE it would have had under exec.
                return
        _write_all(target, masker.flush())
    finally:
        os.close(source)


def start_pump(source: int, target: int, secret: bytes, exited: int) -> threading.Thread:
    """Pump in a thread of its own, one per stream, so neither can block the other."""
    thread = threading.Thread(target=pump, args=(source, target, secret, exited), daemon=True)
    thread.start()
    return thread


def _pending(fd: int) -> int:
    """Return how many bytes wait in pipe FD."""
    import array
    import fcntl
    import termios

    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def _write_all(target: int, data: bytes) -> bool:
    """Write all of DATA; False once the reader has gone."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(target, view)
        except BrokenPipeError:
            return False
        view = view[written:]
    return True
