"""A --token-cmd: split like a shell (no shell runs it), its resource, bounded output, and what its failures say.

runner.py runs it, as it runs every helper: in a process group of its own,
killed with its whole group on a timeout, when azexec is told to stop, and once
it has ended. The first one runs as a job at azexec's terminal (runner.run_job:
a PIN or password prompt works as under a shell); those run while COMMAND runs
have no terminal and are tracked by Jobs (runner.run).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import threading
from collections.abc import Callable
from typing import NamedTuple

from azexec.bounded import Limited
from azexec.errors import MisplacedToken, Terminated, TokenSourceError, UsageError
from azexec.process import signals
from azexec.redact import STDIN_HINT, show
from azexec.say import raw

#: The signals a terminal's keys send (Ctrl-C, Ctrl-\\): a job at its prompt that ended on one of them, or with
#: a shell's status for one (bash's `read`, many CLIs: 128 + the number), ends azexec the same way.
KEYED_SIGNALS = (signal.SIGINT, signal.SIGQUIT)


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
    from azexec import runner

    argv = split(command, resource, label=label)
    name = _Named(label, show(argv[0]))
    output = Limited(f"{label}'s output", "it should print the token alone")
    errors = bytearray() if mask_stderr and not os.isatty(2) else None
    try:
        job = runner.run_job(argv, environment(resource), timeout, take=output.add, errors=errors)
    except (OSError, ValueError) as e:  # ValueError: a NUL in an argument
        raise _spawn_failed(name, e) from None
    except BaseException:
        pass_on(bytes(errors or b""))
        raise
    if job.status != 0:
        # What it printed is no token it would stand by, but may be one: masked with the rest.
        pass_on(bytes(errors or b""), output.data().strip())
    if job.status is None:
        raise _timed_out(name, runner.budget(timeout)[1])
    typed = _typed_at_prompt(job.status) if job.at_terminal else None
    if typed is not None:
        # The user pressed Ctrl-C (or Ctrl-\\) at its prompt: stop as a plain program would,
        # so that a shell loop or `make -k` stops too.
        raise Terminated(typed)
    if job.status != 0:
        raise _failed(name, job.status, "see its messages above")
    return Ran(output.data(), bytes(errors) if errors is not None else None)


def _typed_at_prompt(status: int | None) -> int | None:
    """Return the terminal key's signal a job's STATUS tells of, or None."""
    for number in KEYED_SIGNALS:
        if status in (-number, 128 + number):
            return int(number)
    return None


def pass_on(errors: bytes | None, *known: bytes) -> None:
    """Write a token command's held-back stderr to azexec's, every KNOWN secret and anything token-shaped masked."""
    from azexec.redact import mask_bytes

    if errors:
        raw(mask_bytes(errors, known))


class _Named(NamedTuple):
    """The command as messages name it: the option or variable, and the program."""

    label: str
    program: str


def _failed(name: _Named, status: int, hint: str) -> TokenSourceError:
    """Say how the command failed; never what it printed (its stdout may hold half a secret)."""
    how = f"was killed by {_signal_name(-status)}" if status < 0 else f"exited with status {status}"
    return TokenSourceError(f"{name.label} failed: {name.program} {how}", hint)


def _spawn_failed(name: _Named, error: OSError | ValueError) -> TokenSourceError | MisplacedToken:
    """Say why the command could not be started."""
    if name.program.startswith("<redacted"):  # show() took it for a secret: a token where the command belongs
        return MisplacedToken(f"{name.label} {name.program} looks like a token, not a command", STDIN_HINT)
    if isinstance(error, FileNotFoundError):
        return TokenSourceError(f"{name.label}: {name.program}: command not found", "install it or fix the command")
    reason = error.strerror if isinstance(error, OSError) else str(error)
    return TokenSourceError(f"{name.label}: {name.program}: {reason}", "fix the command")


def _timed_out(name: _Named, timeout: float) -> TokenSourceError:
    return TokenSourceError(
        f"{name.label} did not finish within {timeout:g}s and was killed",
        "check that it runs on its own, or raise --token-cmd-timeout",
    )


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

    def admit() -> None:
        # Under JOBS' lock, as the spawn and the tracking are: stop() cannot run between them (and let azexec
        # exit, leaving the command behind), and after stop() nothing is spawned.
        if jobs.stopped:
            raise TokenSourceError(f"{label}: azexec is stopping", "COMMAND has exited")

    def track(pid: int) -> None:
        jobs.groups.add(pid)
        tracked.append(pid)

    try:
        reaped = runner.run(
            argv,
            environment(resource),
            timeout,
            sigmask=jobs.caller_mask,
            sigdef=sorted(signals("reset")),
            take=output.add,
            guard=jobs.lock,
            admit=admit,
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
