"""Resident mode: stay alive as COMMAND's parent and behave, for the caller, as if exec'd.

Needed by the parts that live beside COMMAND (parts/: the output mask, the
expiry watch, the identity server, the az login directory). Each part starts
before COMMAND and stops after it; the signal loop knows none of them. Signals
are blocked and taken one by one (process.take_signal), so that azexec can tell
a terminal's signal (which the kernel already delivered to COMMAND through the
foreground process group) from one sent to azexec alone, which it forwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NoReturn

from azexec.errors import AzexecError, PartFailed
from azexec.parts import Context, Part, Redirection, Secrets
from azexec.process import (
    caller_core_limit,
    die_of,
    flush_standard_streams,
    keep_pending,
    signals,
    take_signal,
)
from azexec.program import search

#: How long COMMAND has to exit after SIGTERM when a part failed, before SIGKILL.
STOP_GRACE_SECONDS = 5.0


class Failures:
    """The first failure a part reports while COMMAND runs; reporting wakes the signal loop."""

    def __init__(self) -> None:
        self.first: PartFailed | None = None
        self.lock = threading.Lock()

    def report(self, error: PartFailed) -> None:
        """Keep ERROR (the first one wins) and wake the loop, which stops COMMAND."""
        with self.lock:
            if self.first is None:
                self.first = error
        # SIGCHLD is what the loop waits for: "something changed, look".
        os.kill(os.getpid(), signal.SIGCHLD)


def run(argv: Sequence[str], env: Mapping[str, str], parts: Sequence[Part], *, closed_fds: tuple[int, ...]) -> NoReturn:
    """Run ARGV as a child beside PARTS, and exit exactly as it did (125 when a part failed)."""
    flush_standard_streams()
    child_env = dict(env)
    started: list[Part] = []
    code: int | None = None
    failures = Failures()
    secrets = Secrets()
    # Block first: threads the parts start inherit the mask, so signals come to the main thread only.
    original_mask = _block()
    try:
        redirections: list[Redirection] = []
        for part in parts:
            started.append(part)
            context = Context(
                MappingProxyType(dict(child_env)), frozenset(original_mask), closed_fds, failures.report, secrets
            )
            added = part.start(context)
            for name, value in added.env:
                if value is None:
                    child_env.pop(name, None)
                else:
                    child_env[name] = value
            redirections += added.redirections
        code = _run(argv, child_env, redirections, started, original_mask, failures)
    finally:
        for part in reversed(started):
            with contextlib.suppress(Exception):  # COMMAND's status matters more than a part's cleanup
                part.stop(code)
        if code is None or failures.first is not None:  # azexec reports an error and exits
            signal.pthread_sigmask(signal.SIG_SETMASK, original_mask)
    if failures.first is not None:
        raise failures.first
    flush_standard_streams()
    if code < 0:
        die_of(-code)
    os._exit(code)


def _block() -> set[int | signal.Signals]:
    """Block the signals resident mode waits for, and those that dump core; return the previous mask.

    A SIGTERM before COMMAND starts must be forwarded, not kill azexec; and no
    signal may dump azexec while the caller's core limit is back.
    """
    taken = signals("forward") | {signal.SIGCHLD}
    keep_pending(taken)
    return signal.pthread_sigmask(signal.SIG_BLOCK, taken | signals("core"))


def _run(
    argv: Sequence[str],
    env: Mapping[str, str],
    redirections: list[Redirection],
    parts: Sequence[Part],
    original_mask: set[int | signal.Signals],
    failures: Failures,
) -> int:
    forwarded = signals("forward")
    waited_for = forwarded | {signal.SIGCHLD}
    actions = [(os.POSIX_SPAWN_DUP2, ours, theirs) for ours, theirs in redirections]
    reset = sorted(signals("reset") | forwarded | signals("core"))

    def spawn(path: str, args: list[str]) -> int:
        return os.posix_spawn(path, args, dict(env), file_actions=actions, setsigmask=original_mask, setsigdef=reset)

    with caller_core_limit():
        pid = search(argv, env, spawn)
    # COMMAND runs: from here on nothing may end azexec before it (resident mode never orphans it).
    signal.pthread_sigmask(signal.SIG_SETMASK, original_mask | waited_for)
    for part in parts:
        try:
            part.running()
        except PartFailed as e:
            failures.report(e)
    return os.waitstatus_to_exitcode(_wait(pid, waited_for, failures))


def _wait(pid: int, waited_for: set[int], failures: Failures) -> int:
    """Forward the signals sent to azexec alone until PID exits; return its wait status.

    When a part fails, COMMAND is stopped: SIGTERM, then SIGKILL after STOP_GRACE_SECONDS.
    """
    grace: _Grace | None = None
    try:
        while True:
            number, from_terminal = take_signal(waited_for)
            if number == signal.SIGCHLD:
                done, status = grace.waitpid() if grace is not None else os.waitpid(pid, os.WNOHANG | os.WUNTRACED)
                if done == pid and os.WIFSTOPPED(status):
                    _stop_with(pid, os.WSTOPSIG(status))
                    continue
                if done == pid:
                    return status
                if failures.first is not None and grace is None:
                    grace = _Grace(pid)
            elif not from_terminal:
                # Sent to azexec alone (kill, a supervisor): COMMAND has not had it.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, number)
    except ChildProcessError:
        # Reaped elsewhere: its status is lost, and a lost status is never reported as success.
        raise AzexecError("lost track of COMMAND's exit status", "report this as a bug in azexec") from None
    finally:
        if grace is not None:
            grace.timer.cancel()


def _stop_with(pid: int, number: int) -> None:
    """COMMAND stopped by itself (ssh's ~^Z, a program that suspends only itself): stop azexec with the same
    signal, as exec would have shown the shell, which then takes the terminal back and shows the job stopped;
    once continued (`fg`, `bg`), continue COMMAND too: it shares azexec's process group, and the terminal."""
    os.kill(os.getpid(), number)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


class _Grace:
    """COMMAND is told to stop (SIGTERM) and, if it has not exited STOP_GRACE_SECONDS later, killed.

    The kill comes from a timer, so the signal loop goes on waiting on signals alone (no polling); it
    never hits another process: COMMAND's pid stays its own until it is reaped, under the same lock.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.lock = threading.Lock()
        self.reaped = False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        self.timer = threading.Timer(STOP_GRACE_SECONDS, self._kill)
        self.timer.daemon = True
        self.timer.start()

    def _kill(self) -> None:
        with self.lock:
            if not self.reaped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)

    def waitpid(self) -> tuple[int, int]:
        """Reap COMMAND if it has exited (os.waitpid with WNOHANG), so that the timer can no longer kill."""
        with self.lock:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            self.reaped = done == self.pid
        return done, status
