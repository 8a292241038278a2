"""Run a --token-cmd: no shell, bounded output, a deadline, and nothing left behind on timeout."""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from azexec.errors import TokenSourceError, UsageError


def run(command: str, timeout: float, limit: int) -> bytes:
    """Run COMMAND and return its stdout; its stderr goes straight to the user."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise UsageError(f"--token-cmd cannot be split like a shell command: {e}") from None
    if not argv:
        raise UsageError("--token-cmd is empty")
    name = argv[0]
    terminal = _foreground_terminal()
    try:
        proc = subprocess.Popen(
            argv,
            # A prompt for a password or PIN needs the terminal; otherwise the
            # command must not eat input meant for COMMAND.
            stdin=None if terminal is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            **_own_process_group(),
        )
    except FileNotFoundError:
        raise TokenSourceError(f"--token-cmd: {name}: command not found", "install it or fix the command") from None
    except OSError as e:
        raise TokenSourceError(f"--token-cmd: {name}: {e.strerror}", "fix the command") from None

    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    try:
        with _in_foreground(terminal, proc.pid):
            output = _read_until(proc.stdout.fileno(), deadline, limit, timeout)
            status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise _timed_out(timeout) from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        proc.stdout.close()
    if status != 0:
        how = f"was killed by {_signal_name(-status)}" if status < 0 else f"exited with status {status}"
        # Its stdout may hold half a secret: never echo it.
        raise TokenSourceError(f"--token-cmd failed: {name} {how}", "see its messages above")
    return output


def _read_until(fd: int, deadline: float, limit: int, timeout: float) -> bytes:
    """Read FD to EOF, within DEADLINE and LIMIT bytes."""
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise _timed_out(timeout)
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise TokenSourceError(
                    f"--token-cmd printed more than {limit // (1 << 20)} MiB", "it should print the token alone"
                )
            chunks.append(chunk)


def _timed_out(timeout: float) -> TokenSourceError:
    return TokenSourceError(
        f"--token-cmd did not finish within {timeout:g}s and was killed",
        "check that it runs on its own, or raise --token-cmd-timeout",
    )


def _own_process_group() -> dict[str, Any]:
    """Start the command in a process group of its own, so a timeout kills all it started."""
    if os.name != "posix":
        return {}
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}  # pragma: no cover - Python 3.10


def _foreground_terminal() -> int | None:
    """Return stdin's fd when it is the terminal and azexec is in its foreground."""
    if os.name != "posix":
        return None
    try:
        if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
            return 0
    except OSError:
        pass
    return None


@contextmanager
def _in_foreground(terminal: int | None, pgid: int) -> Iterator[None]:
    """Hand the terminal to the command's group while it runs, as a shell does for a job."""
    if terminal is None:
        yield
        return
    # tcsetpgrp from a background group raises SIGTTOU: ignore it for the switch.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        with suppress(OSError):
            os.tcsetpgrp(terminal, pgid)
            # It may have stopped on SIGTTIN reading the terminal before the switch.
            os.killpg(pgid, signal.SIGCONT)
        yield
    finally:
        with suppress(OSError):
            os.tcsetpgrp(terminal, os.getpgrp())
        signal.signal(signal.SIGTTOU, previous)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything in its process group, then reap it."""
    with suppress(OSError):
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    proc.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
