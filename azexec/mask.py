"""Mask the token in COMMAND's output as it streams, without holding lines back."""

from __future__ import annotations

import os
import threading

REPLACEMENT = b"***"
#: As much as a pipe holds at once: one read per wake-up, few Python steps per MiB.
CHUNK = 1 << 16


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


def pump(source: int, target: int, secret: bytes) -> None:
    """Copy SOURCE to TARGET until EOF, masking SECRET; close SOURCE."""
    masker = Masker(secret)
    try:
        while chunk := os.read(source, CHUNK):
            if not _write_all(target, masker.feed(chunk)):
                # Closing our end gives COMMAND the SIGPIPE it would have had under exec.
                return
        _write_all(target, masker.flush())
    finally:
        os.close(source)


def start_pump(source: int, target: int, secret: bytes) -> threading.Thread:
    """Pump in a thread of its own, one per stream, so neither can block the other."""
    thread = threading.Thread(target=pump, args=(source, target, secret), daemon=True)
    thread.start()
    return thread


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
