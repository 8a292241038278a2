"""Mask the token in COMMAND's output as it streams, without holding lines back."""

from __future__ import annotations

import bisect
import os
import select
import threading
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from azexec.errors import PartFailed
from azexec.parts import Added, Context, Preview
from azexec.redact import REPLACEMENT, Secret

#: As much as a pipe holds at once: one read per wake-up, few Python steps per MiB.
CHUNK = 1 << 16
#: How many first bytes of each secret are searched for, longest first: the longest that leaves at most
#: BEGINNINGS distinct ones (all JWTs from one issuer share their header, far longer than 16 bytes); a longer
#: needle lets bytes.find skip further.
PREFIXES = (16, 8, 4, 2, 1)
BEGINNINGS = 16
#: After COMMAND exits, how long more output is waited for once what it left
#: in the pipe has been passed on. Only a process COMMAND left behind (a
#: background job) writes then, and azexec must not hang on it: exec would
#: have returned already.
STRAGGLER_SECONDS = 1.0


class Masker:
    """Replace every occurrence of the secrets in a byte stream fed in arbitrary pieces.

    Only the end of the stream that could still grow into a secret is held
    back, so a line that cannot be part of a token is passed on at once.

    The cost does not grow with the number of secrets: a long job under
    --identity-server hands out a token per resource and per refresh, and
    every JWT from one issuer begins with the same header. Candidates are
    found by the secrets' distinct beginnings (PREFIXES) (a handful however
    many tokens), each with one C-level find per chunk; which secret sits at a
    candidate is one bisection of the sorted secrets. Every secret handed out
    stays masked for the whole run, an expired token too: it still names who
    it was for, and keeping it costs nothing now.
    """

    def __init__(self, *secrets: bytes) -> None:
        self.held = b""
        self.update(secrets)

    def update(self, secrets: tuple[bytes, ...]) -> None:
        """Mask SECRETS from now on, what is held back included."""
        self.secrets = secrets
        self.sorted = sorted({secret for secret in secrets if secret})
        self.longest = max((len(secret) for secret in self.sorted), default=0)
        shortest = min((len(secret) for secret in self.sorted), default=1)
        for size in (min(prefix, shortest) for prefix in PREFIXES):
            self.prefix = size
            self.beginnings = sorted({secret[:size] for secret in self.sorted})
            if len(self.beginnings) <= BEGINNINGS:
                break
        #: What the stream's last bytes must be to begin a secret, when fewer than the prefix of them are there.
        self.short = {beginning[:size] for beginning in self.beginnings for size in range(1, self.prefix)}

    def feed(self, chunk: bytes) -> bytes:
        """Return what can be written now of CHUNK, masked."""
        data = self.held + chunk if self.held else chunk
        self.held = b""
        if not self.sorted:
            return data
        pieces: list[bytes] = []
        done = 0
        for position in self._candidates(data, 0):
            if position < done:
                continue  # inside a secret already masked
            secret = self._at(data, position)
            if secret is not None:
                pieces += (data[done:position], REPLACEMENT)
                done = position + len(secret)
        masked = b"".join((*pieces, data[done:])) if pieces else data
        keep = self._growing(masked)
        if keep:
            self.held = masked[-keep:]
            return masked[:-keep]
        return masked

    def flush(self) -> bytes:
        """Return what was held back, at the end of the stream."""
        held, self.held = self.held, b""
        return held

    def _candidates(self, data: bytes, start: int) -> list[int]:
        """Return where, from START on, DATA has a secret's beginning, in order (overlapping ones too)."""
        found: list[int] = []
        for beginning in self.beginnings:
            position = data.find(beginning, start)
            while position != -1:
                found.append(position)
                position = data.find(beginning, position + 1)
        found.sort()
        return found

    def _at(self, data: bytes, position: int) -> bytes | None:
        """Return the longest secret DATA holds at POSITION, or None."""
        view = data[position : position + self.longest]
        # The secrets that begin VIEW sort at or before it, the longest last: walk back from there while they share
        # VIEW's beginning.
        index = bisect.bisect_right(self.sorted, view) - 1
        beginning = view[: self.prefix]
        while index >= 0 and self.sorted[index][: self.prefix] == beginning:
            if view.startswith(self.sorted[index]):
                return self.sorted[index]
            index -= 1
        return None

    def _growing(self, data: bytes) -> int:
        """Return the length of the longest end of DATA that begins a secret (0: nothing to hold back)."""
        for position in self._candidates(data, max(0, len(data) - self.longest + 1)):
            tail = data[position:]
            index = bisect.bisect_left(self.sorted, tail)
            if index < len(self.sorted) and self.sorted[index].startswith(tail):
                return len(tail)
        for size in range(min(self.prefix - 1, len(data)), 0, -1):
            if data[-size:] in self.short:
                return size
        return 0


def pump(source: int, target: int, secrets: Callable[[], tuple[bytes, ...]], exited: int) -> None:
    """Copy SOURCE to TARGET, masking SECRETS(), until EOF or until COMMAND's output is through; close SOURCE.

    SECRETS() is asked before each chunk: a token handed out while COMMAND
    runs is masked from then on. EXITED becomes readable when COMMAND has
    exited. Everything COMMAND wrote is then in the pipe: that much is passed
    on however slowly TARGET reads; whatever a leftover background job writes
    later gets STRAGGLER_SECONDS.
    """
    masker = Masker(*secrets())
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
            if (current := secrets()) is not masker.secrets:
                masker.update(current)
            if not _write_all(target, masker.feed(chunk)):
                # Closing our end gives COMMAND the SIGPIPE it would have had under exec.
                return
        _write_all(target, masker.flush())
    finally:
        os.close(source)


class Pipe(NamedTuple):
    """One pipe between COMMAND and the caller: COMMAND writes to WRITE as each of TARGETS."""

    read: int
    write: int
    targets: tuple[int, ...]


def _pump_or_fail(
    source: int, target: int, secrets: Callable[[], tuple[bytes, ...]], exited: int, fail: Callable[[PartFailed], None]
) -> None:
    """Run pump(); a write that fails for another reason than a reader gone ends the run."""
    try:
        pump(source, target, secrets, exited)
    except OSError as e:
        fail(PartFailed(f"--mask: cannot pass on COMMAND's output: {e.strerror}", "check where stdout and stderr go"))


class Mask:
    """A resident part: COMMAND writes to pipes, and threads pass its output on with every token masked."""

    def __init__(self, secret: Secret) -> None:
        self.secret = secret
        self.context: Context | None = None
        self.pipes: list[Pipe] = []
        self.pumps: list[threading.Thread] = []
        self.exited: tuple[int, int] | None = None
        self.writes_open = False

    def preview(self, env: Mapping[str, str]) -> Preview:
        """Nothing to add: COMMAND's stdout and stderr become pipes."""
        return Preview("mask")

    def start(self, context: Context) -> Added:
        """Make the pipes; return them as (fd here, fd in COMMAND) redirections."""
        self.context = context
        context.secrets.add(self.secret)
        self.pipes = [Pipe(*os.pipe(), group) for group in streams_to_mask(context.closed_fds)]
        self.writes_open = True
        return Added(redirections=tuple((pipe.write, fd) for pipe in self.pipes for fd in pipe.targets))

    def running(self) -> None:
        """COMMAND holds the write ends: close ours, and start a pump per pipe."""
        self._close_write_ends()
        self.exited = os.pipe()
        assert self.context is not None  # started before running
        for pipe in self.pipes:
            thread = threading.Thread(
                target=_pump_or_fail,
                args=(pipe.read, pipe.targets[0], self.context.secrets, self.exited[0], self.context.fail),
                daemon=True,
            )
            thread.start()
            self.pumps.append(thread)

    def stop(self, code: int | None) -> None:
        """COMMAND exited: let the pumps pass on what it left, then end."""
        self._close_write_ends()
        if self.exited is None:
            for pipe in self.pipes:
                os.close(pipe.read)
            return
        os.close(self.exited[1])
        for thread in self.pumps:
            thread.join()
        os.close(self.exited[0])

    def _close_write_ends(self) -> None:
        """Close our copies of the write ends, once: a second close could hit a reused fd."""
        if self.writes_open:
            self.writes_open = False
            for pipe in self.pipes:
                os.close(pipe.write)


def streams_to_mask(closed_fds: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Return the caller's stdout and stderr as groups of fds that get one pipe each.

    When both are the same file (a terminal, `2>&1`), COMMAND gets one pipe
    for both, so its output keeps the order it was written in. A stream the
    caller closed stays closed for COMMAND.
    """
    open_fds = [fd for fd in (1, 2) if fd not in closed_fds]
    if len(open_fds) == 2:
        out, err = os.fstat(1), os.fstat(2)
        if (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino):
            return [(1, 2)]
    return [(fd,) for fd in open_fds]


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
