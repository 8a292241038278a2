"""The one way azexec waits, besides on COMMAND: a step with one deadline, the stop signals, nothing left behind.

A step is whatever azexec blocks on before or beside COMMAND: a token command,
`az login`, a call to Resource Manager. The timeout the user stated bounds the
whole step, however many sub-steps it has (the listing, the token command run
for it, then az login): each sub-step gets what is left, and a message names the
stated timeout. In the main thread a step also owns the stop signals (TERM, INT,
HUP, QUIT and the rest of process.SIGNAL_ROLES' stop role): one ends the step at
once with Terminated, even where resident mode blocks them to forward them
later, so that the helper's group is killed, what azexec made is removed, and
azexec dies of the signal. A helper process is waited for by waking on its
output, its exit (a reaper thread) or a signal: never a polling sleep.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple

from azexec.errors import Terminated
from azexec.process import signals

#: After a helper exits, how long its stdout may stay open: a background job it left
#: (`sh -c '(sleep 30 &); vault …'`) holds it, and is killed with the helper's group.
LINGER_SECONDS = 0.5
#: The most of a helper's stdout and of its stderr that is kept (a token command's stdout may not exceed it).
MAX_KEPT = 1 << 20

_current: ContextVar[Step | None] = ContextVar("azexec_step", default=None)


class Step:
    """A step azexec waits on: one deadline for all its sub-steps, and (in the main thread) the stop signals."""

    def __init__(self, timeout: float) -> None:
        outer = _current.get()
        now = time.monotonic()
        #: The timeout the user stated, which messages name (an enclosing step's, inside one).
        self.timeout: float = outer.timeout if outer is not None else timeout
        self.deadline: float = now + timeout if outer is None else min(now + timeout, outer.deadline)
        self._stack = contextlib.ExitStack()

    def remaining(self) -> float:
        """Return the seconds left of the step (zero or less: it is over)."""
        return self.deadline - time.monotonic()

    def __enter__(self) -> Step:
        outermost = _current.get() is None
        self._token = _current.set(self)
        try:
            if outermost and threading.current_thread() is threading.main_thread():
                self._stack.enter_context(stop_signals_raise())
        except BaseException:  # a stop signal already pending: nothing started yet, nothing to undo but this
            _current.reset(self._token)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        _current.reset(self._token)


def budget(timeout: float) -> tuple[float, float]:
    """Return how long a sub-step given TIMEOUT may wait (no longer than its step has left), and the timeout to name."""
    step = _current.get()
    if step is None:
        return timeout, timeout
    return max(0.0, min(timeout, step.remaining())), step.timeout


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Turn a stop signal into Terminated in this (the main) thread, even where resident mode blocks it.

    Other threads keep them blocked (they inherited resident mode's mask), so the
    kernel delivers them here, interrupting whatever this thread waits in.
    """

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    stopping = signals("stop")
    previous = {number: signal.signal(number, handler) for number in stopping}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        # One already pending (held off by resident mode) is acted on here, at once.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
        yield
    finally:
        # The caller's mask first: a signal arriving now stays pending for resident mode, never lost.
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for number, action in previous.items():
            signal.signal(number, action)


class Helper(NamedTuple):
    """A helper process azexec started: its pid (its own process group) and the read ends of its stdout and stderr."""

    pid: int
    stdout: int
    stderr: int


class Reaped(NamedTuple):
    """What a helper left: its exit status (None: killed at the deadline), its stdout and its stderr."""

    status: int | None
    stdout: bytes
    stderr: bytes


class Note(NamedTuple):
    """Something to say once when a helper has run for a while (at a terminal), and to clear when it ends."""

    after: float
    say: Callable[[str], None]
    text: str


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    *,
    path: str | None = None,
    sigmask: frozenset[int] = frozenset(),
    sigdef: Sequence[int] = (),
    take: Callable[[bytes], None] | None = None,
    note: Note | None = None,
    guard: contextlib.AbstractContextManager[Any] | None = None,
    admit: Callable[[], None] | None = None,
    started: Callable[[int], None] | None = None,
) -> Reaped:
    """Run ARGV (the program at PATH, else found on PATH) as a helper, and wait for it: the one way azexec does.

    It gets a process group of its own, /dev/null for stdin, pipes for stdout and stderr, SIGMASK
    and SIGDEF. Under GUARD (a lock another thread stops helpers under), ADMIT may refuse it by
    raising, then it is spawned and STARTED is told its pid (STARTED must not raise): so whoever
    stops helpers under GUARD either sees it tracked or stops it from starting. It is waited for
    within TIMEOUT (its step's deadline at most), waking on its output, its exit or a signal; TAKE
    sees each chunk of stdout (it may raise: a source too large). At the deadline, on a stop signal
    or on any error its whole group is killed and reaped; once it has exited its group is killed
    too: nothing outlives the helper.
    Raise OSError or ValueError (a NUL in an argument) when it cannot start.
    """
    # Held off until the helper is in hand, so that a stop signal can always kill what was started.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals("stop"))
    try:
        with guard if guard is not None else contextlib.nullcontext():
            if admit is not None:
                admit()
            helper = _spawn(argv, env, path=path, sigmask=sigmask, sigdef=sigdef)
            if started is not None:
                started(helper.pid)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise
    reaper: _Reaper | None = None
    streams = _Streams(helper, take)
    noted: list[bool] = []
    try:
        reaper = _Reaper(helper.pid)
        # A stop signal held off since before the spawn is acted on here, and kills the group.
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        _wait(reaper, streams, budget(timeout)[0], note, noted)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        with contextlib.suppress(OSError):
            os.killpg(helper.pid, signal.SIGKILL)
        if reaper is not None:
            reaper.finish()
        streams.close()
        if noted and note is not None:
            note.say("")  # cleared: the helper is done
    assert reaper is not None  # made, or an exception left already
    return Reaped(reaper.status, streams.output(), bytes(streams.errors))


def _spawn(
    argv: Sequence[str], env: Mapping[str, str], *, path: str | None, sigmask: frozenset[int], sigdef: Sequence[int]
) -> Helper:
    """Start ARGV in a process group of its own: stdin /dev/null, stdout and stderr pipes."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, out_write, 1),
        (os.POSIX_SPAWN_DUP2, err_write, 2),
    ]
    options = {"file_actions": actions, "setpgroup": 0, "setsigmask": sigmask, "setsigdef": sigdef}
    try:
        if path is None:
            pid = os.posix_spawnp(argv[0], list(argv), env, **options)  # type: ignore[arg-type]
        else:
            pid = os.posix_spawn(path, list(argv), env, **options)  # type: ignore[arg-type]
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        for fd in (out_write, err_write, devnull):
            os.close(fd)
    return Helper(pid, out_read, err_read)


def _wait(reaper: _Reaper, streams: _Streams, allowed: float, note: Note | None, noted: list[bool]) -> None:
    """Read the helper's output until it has exited and its pipes are at their end (LINGER_SECONDS after its exit
    at most), or until ALLOWED seconds are up; say NOTE when it is due (and record that in NOTED)."""
    deadline = time.monotonic() + allowed
    while reaper.status is None or streams.open:
        now = time.monotonic()
        if reaper.status is not None:
            deadline = min(deadline, reaper.exited_at + LINGER_SECONDS)
        if deadline <= now:
            return
        wake = deadline if note is None or noted else min(deadline, reaper.started + note.after)
        watched = streams.open if reaper.status is not None else [*streams.open, reaper.done]
        for fd in select.select(watched, [], [], max(0.0, wake - now))[0]:
            if fd == reaper.done:
                reaper.collect()
            else:
                streams.read(fd)
        if note is not None and not noted and time.monotonic() >= reaper.started + note.after:
            noted.append(True)
            note.say(note.text)


class _Reaper:
    """A thread that waits for one helper to exit and says so on a pipe, so that select() wakes on the exit."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.started = time.monotonic()
        self.status: int | None = None
        self.exited_at = 0.0
        self.done, self._signal = os.pipe()
        self._result: list[int] = []
        # With every signal blocked: none may land in this thread, where the main thread's wait would miss it.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals("stop") | signals("forward") | {signal.SIGCHLD})
        try:
            self._thread = threading.Thread(target=self._reap, daemon=True)
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _reap(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
            self._result.append(os.waitstatus_to_exitcode(status))
        except ChildProcessError:  # reaped elsewhere: its status is lost, never reported as success
            self._result.append(255)
        os.write(self._signal, b"x")

    def collect(self) -> None:
        """The helper has exited: take its status."""
        self._thread.join()
        self.status = self._result[0]
        self.exited_at = time.monotonic()

    def finish(self) -> None:
        """Wait for the thread (the helper's group was just killed), then close the pipe."""
        self._thread.join()
        os.close(self.done)
        os.close(self._signal)


class _Streams:
    """A helper's stdout (each chunk handed to TAKE too) and stderr, the first MAX_KEPT bytes of each kept."""

    def __init__(self, helper: Helper, take: Callable[[bytes], None] | None) -> None:
        self.helper = helper
        self.open = [helper.stdout, helper.stderr]
        self.take = take
        self.kept = bytearray()
        self.errors = bytearray()

    def read(self, fd: int) -> None:
        """Read what FD has; at its end, stop watching it."""
        chunk = os.read(fd, 65536)
        if not chunk:
            self.open.remove(fd)
        elif fd == self.helper.stdout:
            if self.take is not None:
                self.take(chunk)
            _keep(self.kept, chunk)
        else:
            _keep(self.errors, chunk)

    def output(self) -> bytes:
        return bytes(self.kept)

    def close(self) -> None:
        os.close(self.helper.stdout)
        os.close(self.helper.stderr)


class DeadlineReader(io.RawIOBase):
    """A socket's bytes, every read ending by DEADLINE (a timeout on a socket bounds one read, not the whole)."""

    def __init__(self, connection: Any, deadline: float = 0.0) -> None:
        self.connection = connection
        #: time.monotonic() by which every read must be done; its owner may move it (a server, per request).
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the deadline has passed")
        self.connection.settimeout(remaining)
        return int(self.connection.recv_into(buffer))


class _Owning(DeadlineReader):
    """A DeadlineReader that closes its socket when it is closed itself."""

    def close(self) -> None:
        if not self.closed:
            self.connection.close()
        super().close()


class Deadlined:
    """A connected socket whose answer is read by one deadline: http.client reads a response through makefile().

    As with a socket's own makefile(), the socket stays open until both it and the reader are closed:
    http.client closes the connection as soon as an answer says it will close, then reads the answer.
    """

    def __init__(self, connection: Any, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.reader: _Owning | None = None

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        """Return the reader http.client's response reads from; it owns the socket from now on."""
        self.reader = _Owning(self.connection, self.deadline)
        return io.BufferedReader(self.reader)

    def close(self) -> None:
        if self.reader is None:
            self.connection.close()


# ---------------------------------------------------------------- a job at the terminal: the first token command


class _Tty:
    """azexec's controlling terminal, as a job's hand-offs need it.

    The terminal moves only from a group that holds it: to the job from azexec, back to azexec
    from the job. A shell that took it back (the job was put in the background) keeps it.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        #: azexec's own process group.
        self.ours = os.getpgrp()
        #: Whether stdin is this terminal (then the job reads it, as a shell's job would).
        self.is_stdin = _controls(0)
        #: The job's process group, once started.
        self.job = 0
        #: Whether the job ever held the terminal (a Ctrl-C or Ctrl-\ at its prompt is then the user's).
        self.handed = False

    def holder(self) -> int | None:
        """Return the terminal's foreground process group."""
        try:
            return os.tcgetpgrp(self.fd)
        except OSError:
            return None

    def claim_for_job(self) -> None:
        """Make the job the terminal's foreground group, stopping azexec (SIGTTOU) until it may."""
        previous = signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTTOU})
        try:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(self.fd, self.job)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            signal.signal(signal.SIGTTOU, previous)
        self.handed = self.handed or self.holder() == self.job

    def hand(self, to: int, *, held_by: int) -> None:
        """Give the terminal to group TO, only if group HELD_BY holds it now."""
        if self.holder() == held_by:
            _give_terminal(self.fd, to)
        if to == self.job and self.holder() == self.job:
            self.handed = True


class Job(NamedTuple):
    """How a job at the terminal ended: its status (None: killed at the deadline), and whether it had the terminal."""

    status: int | None
    at_terminal: bool


def run_job(
    argv: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    *,
    take: Callable[[bytes], None],
    errors: bytearray | None = None,
) -> Job:
    """Run ARGV as a job of its own, in the foreground of azexec's terminal when azexec has it (for a PIN or
    password prompt), as a shell runs a job: the terminal set in the child before it runs, taken back when it
    stops or ends; Ctrl-Z stops azexec too, `fg` resumes both (time stopped does not count).

    Its stdout goes to TAKE; its stderr into ERRORS when given (the first MAX_KEPT bytes), else
    straight to the user. Within TIMEOUT (its step's deadline at most); a stop signal ends it at
    once (Terminated), its group killed. Raise OSError or ValueError when it cannot start.
    """
    tty = _controlling_terminal()
    try:
        with stop_signals_raise(), _taken_back(tty):
            status = _run_job(list(argv), env, tty, budget(timeout)[0], take, errors)
            return Job(status, tty is not None and tty.handed)
    finally:
        if tty is not None:
            os.close(tty.fd)


class _PastDeadline(Exception):
    """The job did not end within its time."""


def _run_job(
    argv: list[str],
    env: Mapping[str, str],
    tty: _Tty | None,
    timeout: float,
    take: Callable[[bytes], None],
    errors: bytearray | None,
) -> int | None:
    import subprocess

    blocked = signals("stop")
    # Held off until the pid is known, so a signal can always kill what was started.
    original_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            # A prompt for a password or PIN needs the terminal; otherwise the
            # job must not eat input meant for COMMAND.
            stdin=None if tty is not None and tty.is_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if errors is not None else None,
            preexec_fn=lambda: _become_job(tty, original_mask),  # azexec has no threads yet
        )
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        raise
    assert proc.stdout is not None
    try:
        if tty is not None:
            tty.job = proc.pid
            tty.hand(proc.pid, held_by=tty.ours)  # as shells do, from both sides
        # A signal held off since before the spawn is acted on here, and kills the group.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        status: int | None = _collect(proc, tty, timeout, take, errors)
    except _PastDeadline:
        status = None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    # Whatever it left running in its group goes too: nothing outlives azexec.
    _kill_group(proc)
    return status


class _Wakeup:
    """A pipe that SIGCHLD writes to, so one select() sees output, exits and stops alike."""

    def __enter__(self) -> int:
        self.read, self.write = os.pipe()  # close-on-exec already (PEP 446); pipe2 is not on macOS
        os.set_blocking(self.read, False)
        os.set_blocking(self.write, False)
        self.previous_handler = signal.signal(signal.SIGCHLD, lambda *_: None)
        self.previous_fd = signal.set_wakeup_fd(self.write, warn_on_full_buffer=False)
        return self.read

    def __exit__(self, *exc: object) -> None:
        signal.set_wakeup_fd(self.previous_fd)
        signal.signal(signal.SIGCHLD, self.previous_handler)
        os.close(self.read)
        os.close(self.write)


def _collect(
    proc: Any,
    tty: _Tty | None,
    timeout: float,
    take: Callable[[bytes], None],
    errors: bytearray | None,
) -> int:
    """Read the job's stdout (to TAKE) and stderr (into ERRORS) to their end and wait for it, within TIMEOUT.

    Time spent stopped (Ctrl-Z) does not count against the timeout. Raise _PastDeadline at the deadline.
    """
    out = proc.stdout.fileno()
    err = proc.stderr.fileno() if proc.stderr is not None else -1
    kept = errors if errors is not None else bytearray()
    deadline = time.monotonic() + timeout
    with _Wakeup() as wakeup:
        # It may have ended before the handler was in place.
        status, deadline = _reap(proc, tty, deadline)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if status is not None:  # exited; what still holds its stdout dies with its group
                    return status
                raise _PastDeadline
            watched = [fd for fd in (out, err) if fd >= 0]
            ready = select.select([*watched, wakeup], [], [], remaining)[0]
            if wakeup in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wakeup, 512)
                if status is None:
                    status, deadline = _reap(proc, tty, deadline)
            out = _read_ready(out, ready, take)
            err = _read_ready(err, ready, lambda chunk: _keep(kept, chunk))
            if out < 0 and err < 0 and status is not None:
                return status


def _keep(kept: bytearray, chunk: bytes) -> None:
    """Add CHUNK to KEPT, up to MAX_KEPT bytes in all."""
    kept.extend(chunk[: max(0, MAX_KEPT - len(kept))])


def _read_ready(fd: int, ready: list[int], add: Callable[[bytes], None]) -> int:
    """Read FD when READY holds it, and hand the chunk to ADD; return FD, or -1 once it is at its end."""
    if fd < 0 or fd not in ready:
        return fd
    chunk = os.read(fd, 65536)
    add(chunk)
    return fd if chunk else -1


def _reap(proc: Any, tty: _Tty | None, deadline: float) -> tuple[int | None, float]:
    """Collect the job's exit status, or follow it into a stop; return the status and the deadline."""
    while True:
        pid, wait_status = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED)
        if pid == 0:
            return None, deadline
        if not os.WIFSTOPPED(wait_status):
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            # Its stdout is read LINGER_SECONDS more at most: a job it left behind may hold it.
            return int(proc.returncode), min(deadline, time.monotonic() + LINGER_SECONDS)
        stopped = time.monotonic()
        _stop_too(proc.pid, os.WSTOPSIG(wait_status), tty)
        deadline += time.monotonic() - stopped


def _stop_too(pgid: int, number: int, tty: _Tty | None) -> None:
    """The job stopped (Ctrl-Z, or input wanted in the background: NUMBER): stop azexec the same way, so the
    shell shows its job stopped; when continued, hand the terminal on if azexec is in the foreground now."""
    if number in (signal.SIGTTIN, signal.SIGTTOU) and tty is not None:
        # It wants the terminal: claim it for the job as a background job would, with SIGTTOU at its default.
        # While azexec is in the background the kernel stops it there and then (the shell shows the job
        # stopped); once `fg` brings it to the foreground the call goes through. No check-then-act race.
        tty.claim_for_job()
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGCONT)
        return
    if tty is not None:
        tty.hand(tty.ours, held_by=pgid)
    # The shell sees its job stop, and gives back the prompt.
    os.kill(os.getpid(), number if number in (signal.SIGTTIN, signal.SIGTTOU) else signal.SIGTSTP)
    # Continued: by `fg` (the terminal is azexec's group's now) or `bg` (the shell keeps it).
    if tty is not None:
        tty.hand(pgid, held_by=tty.ours)
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGCONT)


def _become_job(tty: _Tty | None, mask: set[int | signal.Signals]) -> None:
    """In the child, before exec: a process group of its own, in the terminal's foreground if azexec's group has it.

    Taking the terminal here, as shells do, means the job owns it before it can
    print a prompt: a Ctrl-C at that prompt reaches the job.
    """
    os.setpgid(0, 0)
    if tty is not None and tty.holder() == tty.ours:
        _give_terminal(tty.fd, os.getpgrp())
    # The parent holds off the stopping signals around the spawn; the job must not.
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _give_terminal(fd: int, pgid: int) -> None:
    """Make PGID the terminal's foreground group, even from the background."""
    # tcsetpgrp from a background group raises SIGTTOU unless it is blocked.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, pgid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _controls(fd: int) -> bool:
    """Tell whether FD is azexec's controlling terminal (tcgetpgrp answers only for that one)."""
    try:
        os.tcgetpgrp(fd)
    except OSError:
        return False
    return True


def _controlling_terminal() -> _Tty | None:
    """Return azexec's controlling terminal, in the foreground or not; None without one."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    return _Tty(fd)


@contextlib.contextmanager
def _taken_back(tty: _Tty | None) -> Iterator[None]:
    """Take the terminal back for azexec when the job is done, however it ended, if the job still holds it.

    Never from a shell that took it back: azexec put in the background (Ctrl-Z, `bg`) must not
    make itself the terminal's foreground (the shell would read end-of-file and exit).
    """
    try:
        yield
    finally:
        if tty is not None and tty.job:
            tty.hand(tty.ours, held_by=tty.job)


def _kill_group(proc: Any) -> None:
    """Kill the job and everything in its process group, then reap it."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(ChildProcessError):
            proc.wait()
