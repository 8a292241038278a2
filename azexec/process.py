"""azexec's own process: standard descriptors, core dumps, and dying of a signal like env(1)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import NoReturn

#: What azexec does with each signal it treats specially, by role:
#:   forward  resident mode passes it on to COMMAND when it was sent to azexec alone
#:   stop     while a helper runs (a token command, az login), the helper's group is killed, then azexec dies of it
#:   core     its default action dumps core: it must never dump azexec, which holds the token
#:   reset    Python ignores it for itself; COMMAND gets the default action back, as under a shell
SIGNAL_ROLES: dict[str, frozenset[str]] = {
    "SIGTERM": frozenset({"forward", "stop"}),
    "SIGHUP": frozenset({"forward", "stop"}),
    "SIGINT": frozenset({"forward", "stop"}),
    "SIGQUIT": frozenset({"forward", "stop", "core"}),
    "SIGUSR1": frozenset({"forward", "stop"}),
    "SIGUSR2": frozenset({"forward", "stop"}),
    "SIGWINCH": frozenset({"forward"}),
    "SIGINFO": frozenset({"forward"}),  # BSD and macOS: Ctrl-T's status request
    # Their default action ends the process: under exec COMMAND would get them, so resident mode
    # forwards them; before COMMAND runs they end azexec like SIGTERM, its helpers first.
    **dict.fromkeys(
        ("SIGALRM", "SIGPROF", "SIGVTALRM", "SIGIO", "SIGPWR", "SIGSTKFLT", "SIGLOST", "SIGEMT"),
        frozenset({"forward", "stop"}),
    ),
    #: The real-time signals, SIGRTMIN to SIGRTMAX (Linux): the same.
    "real-time": frozenset({"forward", "stop"}),
    **dict.fromkeys(
        ("SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSEGV", "SIGSYS", "SIGTRAP", "SIGXCPU"), frozenset({"core"})
    ),
    "SIGPIPE": frozenset({"reset"}),
    "SIGXFSZ": frozenset({"reset"}),
}

#: The signals a terminal sends its foreground process group (Ctrl-C, Ctrl-\\, Ctrl-T, a resize).
TERMINAL_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGQUIT", "SIGWINCH", "SIGINFO") if hasattr(signal, name)
)
#: Signals whose default action is to do nothing (see keep_pending).
QUIET_BY_DEFAULT = frozenset(
    getattr(signal, name) for name in ("SIGCHLD", "SIGWINCH", "SIGINFO") if hasattr(signal, name)
)
#: si_code of a signal the kernel raised itself, such as a terminal's Ctrl-C (Linux).
SI_KERNEL = 0x80

#: The caller's core-file limit, restored for COMMAND alone.
_caller_core_limit: tuple[int, int] | None = None


def signals(role: str) -> set[int]:
    """Return the signals of ROLE (see SIGNAL_ROLES) that this platform has."""
    found: set[int] = {
        number for name, roles in SIGNAL_ROLES.items() if role in roles and (number := _number(name)) is not None
    }
    if role in SIGNAL_ROLES["real-time"] and hasattr(signal, "SIGRTMIN") and hasattr(signal, "SIGRTMAX"):
        found.update(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
    return found


def _number(name: str) -> int | None:
    """Return signal NAME's number here, or None.

    Python 3.10 has no name for Linux's SIGSTKFLT (3.11 added it), yet the kernel
    has the signal: its number in Linux's common numbering (where SIGUSR1 is 10;
    not MIPS, Alpha, SPARC or PA-RISC) stands in, or a kill -STKFLT would end
    azexec and leave COMMAND behind.
    """
    number = getattr(signal, name, None)
    if number is None and name == "SIGSTKFLT" and sys.platform == "linux" and int(signal.SIGUSR1) == 10:
        number = 16
    return None if number is None else int(number)


def reserve_standard_fds() -> tuple[int, ...]:
    """Park /dev/null on closed fds 0-2, close-on-exec; return which they were.

    Otherwise the first file or pipe azexec opens would become fd 1 and reach
    COMMAND as its stdout. Close-on-exec keeps them closed for COMMAND, as env(1) does.
    """
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
            placeholder = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            if placeholder != fd:  # pragma: no cover - os.open takes the lowest free fd
                os.dup2(placeholder, fd, inheritable=False)
                os.close(placeholder)
    return tuple(closed)


def no_core_dumps() -> None:
    """Stop azexec's own process from dumping core: a core file would hold the token."""
    global _caller_core_limit
    import resource

    with contextlib.suppress(OSError, ValueError):
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        _caller_core_limit = (soft, hard)
        # Only the soft limit: the hard one stays, so COMMAND can get the caller's back.
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))


@contextlib.contextmanager
def caller_core_limit() -> Iterator[None]:
    """Give the caller's core-file limit back while COMMAND is exec'd or spawned.

    The caller's signals that dump core are held off meanwhile (handled or
    blocked by the caller of this function), so azexec itself never dumps.
    """
    if _caller_core_limit is None:
        yield
        return
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, _caller_core_limit)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, _caller_core_limit[1]))


def flush_standard_streams() -> None:
    """Flush what azexec printed, before exec or death discards Python's buffers.

    A stream the caller closed is None, or fails to flush: neither may stop COMMAND.
    """
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def die_of(number: int) -> NoReturn:
    """Die of signal NUMBER, so the caller sees exactly what it would see of COMMAND.

    Without a core file: the soft core limit is zero from the start.
    """
    flush_standard_streams()
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP cannot be set, and need not be
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # not reached for a signal whose default action terminates


def keep_pending(numbers: set[int]) -> None:
    """Give NUMBERS whose default action is to do nothing a handler, so that, blocked, they stay pending.

    macOS (like the BSDs) discards such a signal at once, blocked or not, while
    its action is the default: sigwait() would never see SIGCHLD. The handler
    never runs: the signals stay blocked until taken, and exec resets it.
    """
    for number in numbers & QUIET_BY_DEFAULT:
        if signal.getsignal(number) in (signal.SIG_DFL, None):
            signal.signal(number, _nothing)


def _nothing(number: int, frame: object) -> None:
    """Do nothing: a handler that keeps a signal from being discarded (see keep_pending)."""


def take_signal(numbers: set[int]) -> tuple[int, bool]:
    """Wait for one of NUMBERS (blocked, kept pending); return it and whether a terminal sent it.

    A terminal sends its signals to the whole foreground process group, which
    COMMAND shares with azexec: those it has had already. Linux tells who sent a
    signal (si_code); where that cannot be read (macOS: no sigwaitinfo), a
    terminal's signal is recognised by azexec being in the terminal's foreground.
    """
    if hasattr(signal, "sigwaitinfo"):
        info = signal.sigwaitinfo(numbers)
        return info.si_signo, info.si_code == SI_KERNEL
    number = signal.sigwait(numbers)
    return number, _sent_by_terminal(number)


def _sent_by_terminal(number: int) -> bool:
    """Guess whether a terminal sent signal NUMBER: one it sends, to azexec's group in its foreground."""
    return number in TERMINAL_SIGNALS and in_terminal_foreground()


def in_terminal_foreground() -> bool:
    """Tell whether azexec's process group is the foreground group of its controlling terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:  # no controlling terminal
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)
