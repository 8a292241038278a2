"""Run a --token-cmd: no shell, bounded output, a deadline, job control, and nothing left behind.

The command runs in a process group of its own, so that its whole group can be
killed on a timeout or when azexec is told to stop. When azexec is in the
foreground of a terminal, the command gets the terminal (for a PIN or
password prompt) exactly as a shell gives it to a job: set in the child before
it runs, taken back when it stops or ends.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from azexec.bounded import MAX_SOURCE_BYTES, Limited
from azexec.errors import Terminated, TokenSourceError, UsageError
from azexec.process import signals
from azexec.redact import STDIN_HINT, show
from azexec.runner import LINGER_SECONDS
from azexec.say import raw

#: A shell's status for a program that ended on Ctrl-C (bash's `read`, many CLIs).
INTERRUPTED_STATUS = 128 + signal.SIGINT


class Terminal(NamedTuple):
    """The controlling terminal, when azexec is in its foreground."""

    fd: int
    #: Whether stdin is that terminal (then the command may read it).
    is_stdin: bool


#: In an argument of --token-cmd, replaced by the resource a token is wanted for.
RESOURCE_PLACEHOLDER = "{resource}"
#: Set for every token command to the resource a token is wanted for: a shell snippet quotes it
#: (`sh -c '… --resource "$AZEXEC_RESOURCE"'`) instead of having text put into its code.
RESOURCE_VAR = "AZEXEC_RESOURCE"
#: Words that mean something only to a shell: a --token-cmd holding one needs `sh -c`.
SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "|&"})


def split(command: str, resource: str, *, label: str = "--token-cmd") -> list[str]:
    """Split COMMAND like a shell (no shell runs it), then put RESOURCE where {resource} stands."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise UsageError(f"{label} cannot be split like a shell command: {e}") from None
    if not argv:
        raise UsageError(f"{label} is empty")
    needs_shell = _substitutions(command) + [word for word in _shell_words(command) if word in SHELL_OPERATORS]
    if needs_shell:
        raise UsageError(
            f"{label} uses shell syntax ({show(needs_shell[0])}), but it runs without a shell",
            f"wrap it in a shell, the resource quoted from the environment: "
            f'{label} "sh -c \'… \\"\\${RESOURCE_VAR}\\" …\'"',
        )
    if takes_resource(command):
        # Checked here too, whoever asks: the resource may land inside a shell snippet (sh -c '… {resource}').
        from azexec.resources import invalid

        problem = invalid(resource)
        if problem is not None:
            raise TokenSourceError(f"{label}: {show(resource)} is not a resource it may be run for", problem)
    # A word starting with ~ is a home directory, as a shell would make it.
    return [os.path.expanduser(arg).replace(RESOURCE_PLACEHOLDER, resource) for arg in argv]


def environment(resource: str) -> dict[str, str]:
    """Return a token command's environment: azexec's, and the resource it is run for in RESOURCE_VAR."""
    return {**os.environ, RESOURCE_VAR: resource}


def _substitutions(command: str) -> list[str]:
    """Return the command substitutions ($( or a backquote) a shell would run: outside single quotes."""
    quote = ""
    escaped = False
    for index, char in enumerate(command):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        elif quote != "'" and (char == "`" or command.startswith("$(", index)):
            return [command[index : index + 2]]
    return []


def _shell_words(command: str) -> list[str]:
    """Split COMMAND as a shell's parser would, operators apart (`x;` is `x` and `;`), for a diagnosis only."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:
        return []


def takes_resource(command: str) -> bool:
    """Tell whether COMMAND asks for the resource: through {resource}, or by naming RESOURCE_VAR."""
    return RESOURCE_PLACEHOLDER in command or RESOURCE_VAR in command


class Ran(NamedTuple):
    """What a token command printed."""

    output: bytes
    #: Its stderr, held back to be passed on masked (see run()); None when it went straight to the user.
    errors: bytes | None = None


def run(command: str, timeout: float, resource: str, *, label: str, mask_stderr: bool = False) -> Ran:
    """Run COMMAND, in the foreground, and return its stdout; its stderr goes straight to the user.

    LABEL names the command as the user gave it (--token-cmd, AZEXEC_TOKEN_CMD). With MASK_STDERR
    (--mask) and a stderr that is no terminal (a CI log), its stderr is held back instead: the caller
    passes it on with pass_on() once it knows the token; on a failure it is passed on here, anything
    shaped like a token masked. At a terminal it is never held back: a prompt must show at once.
    """
    argv = split(command, resource, label=label)
    terminal = _foreground_terminal()
    capture = mask_stderr and not os.isatty(2)
    try:
        with _stopping_raises(), _in_foreground(terminal):
            return _run(argv, environment(resource), _Named(label, show(argv[0])), terminal, timeout, capture)
    finally:
        if terminal is not None:
            os.close(terminal.fd)


def pass_on(errors: bytes | None, *known: bytes) -> None:
    """Write a token command's held-back stderr to azexec's, every KNOWN secret and anything token-shaped masked."""
    from azexec.redact import mask_bytes

    if errors:
        raw(mask_bytes(errors, known))


class _Named(NamedTuple):
    """The command as messages name it: the option or variable, and the program."""

    label: str
    program: str


def _run(
    argv: list[str], env: dict[str, str], name: _Named, terminal: Terminal | None, timeout: float, capture: bool
) -> Ran:
    blocked = signals("stop")
    # Held off until the pid is known, so a signal can always kill what was started.
    original_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            # A prompt for a password or PIN needs the terminal; otherwise the
            # command must not eat input meant for COMMAND.
            stdin=None if terminal is not None and terminal.is_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture else None,
            preexec_fn=lambda: _become_job(terminal, original_mask),  # azexec has no threads yet
        )
    except BaseException as e:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        if isinstance(e, (OSError, ValueError)):  # ValueError: a NUL in an argument
            raise _spawn_failed(name, e) from None
        raise

    assert proc.stdout is not None
    errors = bytearray()
    try:
        if terminal is not None:
            _give_terminal(terminal.fd, proc.pid)  # as shells do, from both sides
        # A signal held off since before the spawn is acted on here, and kills the group.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        output, status = _collect(proc, name, terminal, timeout, errors)
    except BaseException:
        _kill_group(proc)
        pass_on(bytes(errors))
        raise
    finally:
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    # Whatever it left running in its group goes too: nothing outlives azexec.
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    if status != 0:
        # What it printed is no token it would stand by, but may be one: masked with the rest.
        pass_on(bytes(errors), output.strip())
    if terminal is not None and status in (-signal.SIGINT, INTERRUPTED_STATUS):
        # The user pressed Ctrl-C at its prompt: stop as a plain program would,
        # so that a shell loop or `make -k` stops too.
        raise Terminated(signal.SIGINT)
    if status != 0:
        raise _failed(name, status, "see its messages above")
    return Ran(output, bytes(errors) if capture else None)


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
    proc: subprocess.Popen[bytes], name: _Named, terminal: Terminal | None, timeout: float, errors: bytearray
) -> tuple[bytes, int]:
    """Read the command's stdout to EOF and wait for it, within TIMEOUT and the source size limit.

    Its stderr, when piped, goes into ERRORS (the first MiB). Time spent stopped (Ctrl-Z) does not
    count against the timeout.
    """
    assert proc.stdout is not None
    out = proc.stdout.fileno()
    err = proc.stderr.fileno() if proc.stderr is not None else -1
    gathered = Limited(f"{name.label}'s output", "it should print the token alone")
    status: int | None = None
    deadline = time.monotonic() + timeout
    with _Wakeup() as wakeup:
        # It may have ended before the handler was in place.
        status, deadline = _reap(proc, terminal, deadline)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if status is not None:  # exited; what still holds its stdout dies with its group
                    return gathered.data(), status
                raise _timed_out(name, timeout)
            watched = [fd for fd in (out, err) if fd >= 0]
            ready = select.select([*watched, wakeup], [], [], remaining)[0]
            if wakeup in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wakeup, 512)
                if status is None:
                    status, deadline = _reap(proc, terminal, deadline)
            out = _read_ready(out, ready, gathered.add)
            err = _read_ready(err, ready, lambda chunk: errors.extend(chunk[: max(0, MAX_SOURCE_BYTES - len(errors))]))
            if out < 0 and err < 0 and status is not None:
                return gathered.data(), status


def _read_ready(fd: int, ready: list[int], add: Callable[[bytes], None]) -> int:
    """Read FD when READY holds it, and hand the chunk to ADD; return FD, or -1 once it is at its end."""
    if fd < 0 or fd not in ready:
        return fd
    chunk = os.read(fd, 65536)
    add(chunk)
    return fd if chunk else -1


def _reap(proc: subprocess.Popen[bytes], terminal: Terminal | None, deadline: float) -> tuple[int | None, float]:
    """Collect the command's exit status, or follow it into a stop; return the status and the deadline."""
    while True:
        pid, wait_status = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED)
        if pid == 0:
            return None, deadline
        if not os.WIFSTOPPED(wait_status):
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            # Its stdout is read LINGER_SECONDS more at most: a job it left behind may hold it.
            return proc.returncode, min(deadline, time.monotonic() + LINGER_SECONDS)
        stopped = time.monotonic()
        _stop_too(proc.pid, terminal)
        deadline += time.monotonic() - stopped


def _stop_too(pgid: int, terminal: Terminal | None) -> None:
    """The command stopped (Ctrl-Z): stop azexec as well, and resume both on `fg`."""
    if terminal is not None:
        _give_terminal(terminal.fd, os.getpgrp())
    # The shell sees its job stop, and gives back the prompt.
    os.kill(os.getpid(), signal.SIGTSTP)
    # Continued: by `fg` (the terminal is ours again) or `bg`.
    if terminal is not None and _owns(terminal.fd):
        _give_terminal(terminal.fd, pgid)
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGCONT)


def _failed(name: _Named, status: int, hint: str) -> TokenSourceError:
    """Say how the command failed; never what it printed (its stdout may hold half a secret)."""
    how = f"was killed by {_signal_name(-status)}" if status < 0 else f"exited with status {status}"
    return TokenSourceError(f"{name.label} failed: {name.program} {how}", hint)


def _spawn_failed(name: _Named, error: OSError | ValueError) -> TokenSourceError:
    """Say why the command could not be started."""
    if name.program.startswith("<redacted"):  # show() took it for a secret: a token where the command belongs
        return TokenSourceError(f"{name.label}: {name.program} looks like a token, not a command", STDIN_HINT)
    if isinstance(error, FileNotFoundError):
        return TokenSourceError(f"{name.label}: {name.program}: command not found", "install it or fix the command")
    reason = error.strerror if isinstance(error, OSError) else str(error)
    return TokenSourceError(f"{name.label}: {name.program}: {reason}", "fix the command")


def _timed_out(name: _Named, timeout: float) -> TokenSourceError:
    return TokenSourceError(
        f"{name.label} did not finish within {timeout:g}s and was killed",
        "check that it runs on its own, or raise --token-cmd-timeout",
    )


def _become_job(terminal: Terminal | None, mask: set[int | signal.Signals]) -> None:
    """In the child, before exec: a process group of its own, in the terminal's foreground.

    Taking the terminal here, as shells do, means the command owns it before
    it can print a prompt: a Ctrl-C at that prompt reaches the command.
    """
    os.setpgid(0, 0)
    if terminal is not None:
        _give_terminal(terminal.fd, os.getpgrp())
    # The parent holds off the stopping signals around the spawn; the command must not.
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


def _owns(fd: int) -> bool:
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def _foreground_terminal() -> Terminal | None:
    """Return azexec's controlling terminal when azexec is in its foreground."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    if not _owns(fd):
        os.close(fd)
        return None
    # tcgetpgrp answers only for the controlling terminal: stdin is that terminal.
    return Terminal(fd, is_stdin=os.isatty(0) and _owns(0))


@contextlib.contextmanager
def _in_foreground(terminal: Terminal | None) -> Iterator[None]:
    """Take the terminal back for azexec when the command is done, however it ended."""
    try:
        yield
    finally:
        if terminal is not None:
            _give_terminal(terminal.fd, os.getpgrp())


@contextlib.contextmanager
def _stopping_raises() -> Iterator[None]:
    """Turn a signal that would end azexec into Terminated, so the command's group is killed first."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    previous = {number: signal.signal(number, handler) for number in signals("stop")}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything in its process group, then reap it."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(ChildProcessError):
            proc.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Jobs:
    """The token commands run while COMMAND runs: with the caller's signal mask, all stopped with azexec."""

    def __init__(
        self, caller_mask: frozenset[int] = frozenset(), stderr: Callable[[bytes], None] | None = None
    ) -> None:
        #: The caller's signal mask (resident mode blocks what it forwards; a token command must not inherit that).
        self.caller_mask = caller_mask
        #: Where their stderr goes: azexec's, every token it handed out masked (see Context.secrets).
        self.stderr = stderr or raw
        self.groups: set[int] = set()
        self.stopped = False
        self.lock = threading.Lock()

    def discard(self, pgid: int) -> None:
        """Stop tracking PGID, which has ended."""
        with self.lock:
            self.groups.discard(pgid)

    def stop(self) -> None:
        """Kill every group running, and any started from now on."""
        with self.lock:
            self.stopped = True
            groups, self.groups = self.groups, set()
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)


def run_detached(command: str, timeout: float, resource: str, *, label: str, jobs: Jobs) -> tuple[bytes, bytes]:
    """Run COMMAND for RESOURCE while COMMAND (azexec's) runs: no terminal, no stdin, any thread.

    It runs in a process group of its own, tracked by JOBS while it runs, with
    the caller's signal mask, within TIMEOUT (and its step's deadline, when run
    for one: runner.Step). Return its stdout and its stderr, which the caller
    passes on through JOBS once it knows the token to mask in it (on a failure
    it is passed on here).
    """
    from azexec import runner

    argv = split(command, resource, label=label)
    name = _Named(label, show(argv[0]))
    output = Limited(f"{label}'s output", "it should print the token alone")

    tracked: list[int] = []

    def track(pid: int) -> None:
        # Tracked under JOBS' lock, checked again: stop() cannot run between the spawn and this (and let azexec
        # exit, leaving the command behind); after stop(), what was started is killed at once.
        with jobs.lock:
            stopped = jobs.stopped
            jobs.groups.add(pid)
            tracked.append(pid)
        if stopped:
            raise TokenSourceError(f"{label}: azexec is stopping", "COMMAND has exited")

    if jobs.stopped:
        raise TokenSourceError(f"{label}: azexec is stopping", "COMMAND has exited")
    try:
        reaped = runner.run(
            argv,
            environment(resource),
            timeout,
            sigmask=jobs.caller_mask,
            sigdef=sorted(signals("reset")),
            take=output.add,
            started=track,
        )
    except (OSError, ValueError) as e:
        raise _spawn_failed(name, e) from None
    finally:
        for pid in tracked:
            jobs.discard(pid)
    if reaped.status is None:
        raise _timed_out(name, runner.budget(timeout)[1])
    if reaped.status != 0:
        jobs.stderr(reaped.stderr)
        raise _failed(name, reaped.status, "see its messages on azexec's stderr")
    return reaped.stdout, reaped.stderr
