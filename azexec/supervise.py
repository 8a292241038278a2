"""Resident mode: stay alive as COMMAND's parent and behave, for the caller, as if exec'd.

Needed on Windows (no real exec), to mask COMMAND's output, and to watch the
token's expiry. On POSIX, signals are blocked and taken with sigtimedwait, so
that azexec can tell a terminal's signal (which the kernel already delivered to
COMMAND through the foreground process group) from one sent to azexec alone,
which it forwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from azexec.launch import PYTHON_IGNORED, exec_error, search
from azexec.process import CORE_SIGNALS, caller_core_limit, die_of, signal_numbers
from azexec.token import describe_span, format_utc

#: Forwarded to COMMAND when sent to azexec alone.
FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGINT")
#: si_code of a signal the kernel raised itself, such as a terminal's Ctrl-C to the foreground group.
SI_KERNEL = 0x80
WARN_BEFORE_SECONDS = 300
#: The longest single wait for a signal: longer waits overflow the platform's clock types.
MAX_WAIT_SECONDS = 86400.0

Say = Callable[[str], None]
Event = tuple[float, str]


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    secret: str | None = None,
    expires_at: float | None = None,
    warn: Say,
    report: Say,
) -> NoReturn:
    """Run ARGV as a child and exit as it did; mask SECRET in its output when given.

    WARN prints the expiry warnings (silenced by -q); REPORT the final diagnosis.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # None when the caller closed it: suppressed
    started = time.time()
    events = _expiry_events(expires_at, started)
    spawn = _run_posix if os.name == "posix" else _run_windows
    code = spawn(argv, env, secret.encode() if secret else None, events, warn)
    with contextlib.suppress(Exception):  # COMMAND's status matters more than a message
        if code != 0 and expires_at is not None and time.time() >= expires_at:
            report(
                f"the access token expired {describe_span(expires_at - started)} into the run; "
                "COMMAND's failure may be an authentication error"
            )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if code < 0:
        die_of(-code)
    os._exit(code)


def _streams_to_mask() -> list[tuple[int, ...]]:
    """Return the caller's stdout and stderr as groups of fds that get one pipe each.

    When both are the same file (a terminal, `2>&1`), COMMAND gets one pipe
    for both, so its output keeps the order it was written in. A stream the
    caller closed stays closed for COMMAND.
    """
    from azexec.process import closed_at_start

    open_fds = [fd for fd in (1, 2) if fd not in closed_at_start]
    if len(open_fds) == 2:
        out, err = os.fstat(1), os.fstat(2)
        if (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino):
            return [(1, 2)]
    return [(fd,) for fd in open_fds]


def _run_posix(
    argv: Sequence[str], env: Mapping[str, str], secret: bytes | None, events: list[Event], warn: Say
) -> int:
    forwarded = set(signal_numbers(FORWARDED))
    waited_for = forwarded | {signal.SIGCHLD}
    # Block before spawning: a SIGTERM in between must be forwarded, not kill
    # azexec; and no signal may dump azexec while the caller's core limit is back.
    original_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited_for | set(signal_numbers(CORE_SIGNALS)))
    groups = _streams_to_mask() if secret else []
    pipes = [(*os.pipe(), group) for group in groups]
    actions = [(os.POSIX_SPAWN_DUP2, write_end, fd) for _, write_end, group in pipes for fd in group]
    reset = signal_numbers(PYTHON_IGNORED) + sorted(forwarded) + signal_numbers(CORE_SIGNALS)

    def spawn(path: str, args: list[str]) -> int:
        return os.posix_spawn(path, args, dict(env), file_actions=actions, setsigmask=original_mask, setsigdef=reset)

    try:
        with caller_core_limit():
            pid = search(argv, env, spawn)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, original_mask)
        raise
    finally:
        for _, write_end, _ in pipes:
            os.close(write_end)
    # COMMAND runs: from here on nothing may end azexec before it (resident mode never orphans it).
    signal.pthread_sigmask(signal.SIG_SETMASK, original_mask | waited_for)
    exited_read, exited_write = os.pipe()
    pumps = _start_pumps([(r, group[0]) for r, _, group in pipes], secret, exited_read)
    status = _wait(pid, waited_for, events, warn)
    os.close(exited_write)
    for pump in pumps:
        pump.join()
    os.close(exited_read)
    return os.waitstatus_to_exitcode(status)


def _wait(pid: int, waited_for: set[signal.Signals], events: list[Event], warn: Say) -> int:
    """Forward signals and say the expiry events until PID exits; return its wait status."""
    while True:
        try:
            if events:
                due = events[0][0] - time.time()
                info = signal.sigtimedwait(waited_for, min(max(0.0, due), MAX_WAIT_SECONDS))
            else:
                info = signal.sigwaitinfo(waited_for)
            if info is None:
                if events and time.time() >= events[0][0]:
                    warn(events.pop(0)[1])
            elif info.si_signo == signal.SIGCHLD:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return status
            elif info.si_code != SI_KERNEL:
                # Sent to azexec alone (kill, a supervisor): COMMAND has not had it.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, info.si_signo)
        except ChildProcessError:  # pragma: no cover - reaped elsewhere: nothing left to wait for
            return 0
        except Exception:  # a failed warning must never orphan COMMAND
            events.clear()


def _run_windows(  # pragma: no cover - Windows
    argv: Sequence[str], env: Mapping[str, str], secret: bytes | None, events: list[Event], warn: Say
) -> int:
    import subprocess

    pipe = subprocess.PIPE if secret else None
    try:
        proc = subprocess.Popen(list(argv), env=dict(env), stdout=pipe, stderr=pipe)
    except OSError as e:
        raise exec_error(argv[0], e) from None
    streams = [(proc.stdout.fileno(), 1), (proc.stderr.fileno(), 2)] if proc.stdout and proc.stderr else []
    exited_read, exited_write = os.pipe()
    pumps = _start_pumps(streams, secret, exited_read)
    while True:
        try:
            timeout = min(max(0.0, events[0][0] - time.time()), MAX_WAIT_SECONDS) if events else None
            code = proc.wait(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            if events and time.time() >= events[0][0]:
                warn(events.pop(0)[1])
    os.close(exited_write)
    for pump in pumps:
        pump.join()
    return code


def _start_pumps(streams: list[tuple[int, int]], secret: bytes | None, exited: int) -> list[threading.Thread]:
    if not streams or secret is None:
        return []
    from azexec.mask import start_pump

    return [start_pump(source, target, secret, exited) for source, target in streams]


def _expiry_events(expires_at: float | None, now: float) -> list[Event]:
    """Return when to warn: 5 minutes before expiry (if still ahead), and at expiry."""
    if expires_at is None:
        return []
    events = []
    if expires_at - WARN_BEFORE_SECONDS > now:
        soon = f"the access token expires in 5 minutes ({format_utc(expires_at)}) and COMMAND is still running"
        events.append((expires_at - WARN_BEFORE_SECONDS, soon))
    events.append((expires_at, f"the access token expired ({format_utc(expires_at)}) while COMMAND is running"))
    return events
