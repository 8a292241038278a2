"""Resident mode: stay alive as COMMAND's parent and behave, for the caller, as if exec'd.

Needed on Windows (no real exec), and by the parts that live beside COMMAND:
the output mask, the expiry watch. Each part starts before COMMAND and stops
after it; the signal loop knows none of them. On POSIX, signals are blocked
and taken with sigwaitinfo, so that azexec can tell a terminal's signal (which
the kernel already delivered to COMMAND through the foreground process group)
from one sent to azexec alone, which it forwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from typing import NoReturn, Protocol

from azexec.launch import PYTHON_IGNORED, exec_error, search
from azexec.process import CORE_SIGNALS, caller_core_limit, die_of, flush_standard_streams, signal_numbers

#: Forwarded to COMMAND when sent to azexec alone.
FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGINT")
#: si_code of a signal the kernel raised itself, such as a terminal's Ctrl-C to the foreground group.
SI_KERNEL = 0x80

#: A descriptor of azexec's to dup2 onto a descriptor of COMMAND's.
Redirection = tuple[int, int]


class Part(Protocol):
    """Something resident mode runs beside COMMAND: started before it, stopped after it."""

    def start(self, env: dict[str, str]) -> list[Redirection]:
        """Prepare, before COMMAND starts; may add to ENV; return redirections of COMMAND's fds."""

    def running(self) -> None:
        """COMMAND has started."""

    def stop(self, code: int | None) -> None:
        """COMMAND has exited with CODE (None: it never started); clean up."""


def run(argv: Sequence[str], env: Mapping[str, str], parts: Sequence[Part] = ()) -> NoReturn:
    """Run ARGV as a child beside PARTS, and exit exactly as it did."""
    flush_standard_streams()
    child_env = dict(env)
    started: list[Part] = []
    code: int | None = None
    # Block first: threads the parts start inherit the mask, so signals come to the main thread only.
    original_mask: set[int | signal.Signals] = _block() if os.name == "posix" else set()
    try:
        redirections: list[Redirection] = []
        for part in parts:
            started.append(part)
            redirections += part.start(child_env)
        if os.name == "posix":
            code = _run_posix(argv, child_env, redirections, started, original_mask)
        else:  # pragma: no cover - Windows
            code = _run_windows(argv, child_env, redirections, started)
    finally:
        for part in reversed(started):
            with contextlib.suppress(Exception):  # COMMAND's status matters more than a part's cleanup
                part.stop(code)
        if code is None and os.name == "posix":  # no COMMAND: azexec reports an error and exits
            signal.pthread_sigmask(signal.SIG_SETMASK, original_mask)
    flush_standard_streams()
    assert code is not None  # spawn returned
    if code < 0:
        die_of(-code)
    os._exit(code)


def _block() -> set[int | signal.Signals]:
    """Block the signals resident mode waits for, and those that dump core; return the previous mask.

    A SIGTERM before COMMAND starts must be forwarded, not kill azexec; and no
    signal may dump azexec while the caller's core limit is back.
    """
    waited_for = set(signal_numbers(FORWARDED)) | {signal.SIGCHLD}
    return signal.pthread_sigmask(signal.SIG_BLOCK, waited_for | set(signal_numbers(CORE_SIGNALS)))


def _run_posix(
    argv: Sequence[str],
    env: Mapping[str, str],
    redirections: list[Redirection],
    parts: Sequence[Part],
    original_mask: set[int | signal.Signals],
) -> int:
    forwarded = set(signal_numbers(FORWARDED))
    waited_for = forwarded | {signal.SIGCHLD}
    actions = [(os.POSIX_SPAWN_DUP2, ours, theirs) for ours, theirs in redirections]
    reset = signal_numbers(PYTHON_IGNORED) + sorted(forwarded) + signal_numbers(CORE_SIGNALS)

    def spawn(path: str, args: list[str]) -> int:
        return os.posix_spawn(path, args, dict(env), file_actions=actions, setsigmask=original_mask, setsigdef=reset)

    with caller_core_limit():
        pid = search(argv, env, spawn)
    # COMMAND runs: from here on nothing may end azexec before it (resident mode never orphans it).
    signal.pthread_sigmask(signal.SIG_SETMASK, original_mask | waited_for)
    for part in parts:
        with contextlib.suppress(Exception):
            part.running()
    return os.waitstatus_to_exitcode(_wait(pid, waited_for))


def _wait(pid: int, waited_for: set[signal.Signals]) -> int:
    """Forward the signals sent to azexec alone until PID exits; return its wait status."""
    while True:
        try:
            info = signal.sigwaitinfo(waited_for)
            if info.si_signo == signal.SIGCHLD:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return status
            elif info.si_code != SI_KERNEL:
                # Sent to azexec alone (kill, a supervisor): COMMAND has not had it.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, info.si_signo)
        except ChildProcessError:  # pragma: no cover - reaped elsewhere: nothing left to wait for
            return 0


def _run_windows(  # pragma: no cover - Windows
    argv: Sequence[str], env: Mapping[str, str], redirections: list[Redirection], parts: Sequence[Part]
) -> int:
    import subprocess

    streams = {theirs: ours for ours, theirs in redirections}
    try:
        proc = subprocess.Popen(list(argv), env=dict(env), stdout=streams.get(1), stderr=streams.get(2))
    except OSError as e:
        raise exec_error(argv[0], e) from None
    for part in parts:
        part.running()
    return proc.wait()
