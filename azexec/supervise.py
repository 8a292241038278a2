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

from azexec.launch import PYTHON_IGNORED, exec_error
from azexec.token import describe_span, format_utc

#: Forwarded to COMMAND when sent to azexec alone.
FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGINT")
#: si_code of a signal the kernel raised itself, such as a terminal's Ctrl-C to the foreground group.
SI_KERNEL = 0x80
WARN_BEFORE_SECONDS = 300
#: After COMMAND exits, how long --mask waits for the pipes to drain. Only a
#: process COMMAND left behind (a background job) keeps them open longer, and
#: azexec must not hang on it: exec would have returned already.
DRAIN_SECONDS = 1.0

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
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.time()
    events = _expiry_events(expires_at, started)
    spawn = _run_posix if os.name == "posix" else _run_windows
    code = spawn(argv, env, secret.encode() if secret else None, events, warn)
    if code != 0 and expires_at is not None and time.time() >= expires_at:
        report(
            f"the access token expired {describe_span(expires_at - started)} into the run; "
            "COMMAND's failure may be an authentication error"
        )
    sys.stdout.flush()
    sys.stderr.flush()
    if code < 0:
        _die_of(-code)
    os._exit(code)


def _run_posix(
    argv: Sequence[str], env: Mapping[str, str], secret: bytes | None, events: list[Event], warn: Say
) -> int:
    forwarded = {getattr(signal, name) for name in FORWARDED}
    waited_for = forwarded | {signal.SIGCHLD}
    # Block before spawning: a SIGTERM in between must be forwarded, not kill azexec.
    original_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited_for)
    pipes = [(*os.pipe(), target) for target in (1, 2)] if secret else []
    actions = [(os.POSIX_SPAWN_DUP2, write_end, target) for _, write_end, target in pipes]
    try:
        pid = os.posix_spawnp(
            argv[0],
            list(argv),
            dict(env),
            file_actions=actions,
            setsigmask=original_mask,
            setsigdef=[getattr(signal, n) for n in PYTHON_IGNORED if hasattr(signal, n)] + sorted(forwarded),
        )
    except OSError as e:
        signal.pthread_sigmask(signal.SIG_SETMASK, original_mask)
        raise exec_error(argv[0], e) from None
    finally:
        for _, write_end, _ in pipes:
            os.close(write_end)
    pumps = _start_pumps([(r, target) for r, _, target in pipes], secret)

    while True:
        if events:
            info = signal.sigtimedwait(waited_for, max(0.0, events[0][0] - time.time()))
        else:
            info = signal.sigwaitinfo(waited_for)
        if info is None:  # the next expiry event is due
            warn(events.pop(0)[1])
        elif info.si_signo == signal.SIGCHLD:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                break
        elif info.si_code != SI_KERNEL:
            # Sent to azexec alone (kill, a supervisor): COMMAND has not had it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, info.si_signo)
    _drain(pumps)
    return os.waitstatus_to_exitcode(status)


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
    pumps = _start_pumps(streams, secret)
    while True:
        try:
            code = proc.wait(timeout=max(0.0, events[0][0] - time.time()) if events else None)
            break
        except subprocess.TimeoutExpired:
            warn(events.pop(0)[1])
    _drain(pumps)
    return code


def _start_pumps(streams: list[tuple[int, int]], secret: bytes | None) -> list[threading.Thread]:
    if not streams or secret is None:
        return []
    from azexec.mask import start_pump

    return [start_pump(source, target, secret) for source, target in streams]


def _drain(pumps: list[threading.Thread]) -> None:
    deadline = time.monotonic() + DRAIN_SECONDS
    for pump in pumps:
        pump.join(max(0.0, deadline - time.monotonic()))


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


def _die_of(number: int) -> NoReturn:
    """Die of the signal that killed COMMAND, so the caller sees exactly what exec would show."""
    import resource

    # Dying of SIGQUIT or SIGABRT must not leave a core file of azexec behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError):  # SIGKILL and SIGSTOP cannot be set, and need not be
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # not reached for a signal whose default action terminates
