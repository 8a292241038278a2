"""Find a program as execvp(3) does, exec it, and fail with env(1)'s 126 and 127."""

# No `from __future__ import annotations`: its string annotations cost a compile per NamedTuple field at
# import, on the start-up path (docs/development.md, "One exception to the style").

import errno
import os
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple, NoReturn, TypeVar

from azexec.errors import CommandNotExecutable, CommandNotFound, LaunchError

#: The shell execvp(3), env(1) and shells fall back on for a script without a #! line.
BOURNE_SHELL = "/bin/sh"
#: Errors after which execvp(3) tries the next PATH entry instead of giving up.
_NEXT_ENTRY = {errno.ENOENT, errno.ENOTDIR, errno.ESTALE, errno.ENODEV, errno.ETIMEDOUT, errno.EACCES}

T = TypeVar("T")


class Found(NamedTuple):
    """Where exec would find COMMAND, or what it would fail with."""

    path: str | None
    #: The exit status exec would end in instead (126, 127), or None when it would run.
    status: int | None
    reason: str


def candidates(command: str, env: Mapping[str, str]) -> Iterator[str]:
    """Yield the paths execvp(3) tries for COMMAND, on the child's PATH.

    An empty PATH entry (PATH="" included) is the current directory, as for exec.
    """
    if "/" in command:
        yield command
        return
    for directory in os.get_exec_path(dict(env)):
        yield os.path.join(directory, command) if directory else command


def which(command: str, env: Mapping[str, str]) -> Found:
    """Predict what exec will do with COMMAND, without running it: the same search, the same errors."""
    denied = None
    for path in candidates(command, env):
        try:
            info = os.stat(path)
        except ValueError:  # a NUL in the name
            return Found(None, 126, "its name cannot be executed")
        except OSError as e:
            if e.errno == errno.EACCES:
                denied = denied or path
            if e.errno in _NEXT_ENTRY:
                continue
            # What execve would stop at too: a name too long, a symlink loop, …
            return Found(None, 126, e.strerror or "it cannot be executed")
        if stat.S_ISDIR(info.st_mode) or not os.access(path, os.X_OK):
            denied = denied or path
            continue
        return Found(path, None, "")
    if denied is not None:
        return Found(denied, 126, "not executable")
    return Found(None, 127, "not found")


def require(command: str, env: Mapping[str, str]) -> None:
    """Raise env(1)'s 127 or 126 now when exec would fail to find or execute COMMAND."""
    found = which(command, env)
    if found.status == 127:
        raise exec_error(command, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))
    if found.status is not None:
        raise exec_error(command, PermissionError(errno.EACCES, found.reason))


def execute(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with ARGV, as env(1) does."""
    import signal

    from azexec import process

    process.flush_standard_streams()
    # Otherwise `azexec … -- yes | head -1` would leave yes writing into EPIPE forever.
    for number in process.signals("reset"):
        signal.signal(number, signal.SIG_DFL)
    # While the caller's core limit is back, a signal that would dump azexec
    # (and the token with it) is only noted; exec resets the handlers for COMMAND.
    for number in process.signals("core"):
        signal.signal(number, lambda *_: None)
    with process.caller_core_limit():
        search(argv, env, lambda path, args: os.execve(path, args, env))
    raise AssertionError("exec returned")  # pragma: no cover


def search(argv: Sequence[str], env: Mapping[str, str], start: Callable[[str, list[str]], T]) -> T:
    """Call START(path, argv) on each PATH candidate, as execvp(3) does; raise env(1)'s error.

    A file exec refuses as not a program (ENOEXEC) is a script without #!: it
    runs through /bin/sh, as execvp and shells do.
    """
    command = argv[0]
    first_denied: OSError | None = None
    last: OSError | None = None
    try:
        for path in candidates(command, env):
            try:
                return start(path, list(argv))
            except OSError as e:
                if e.errno == errno.ENOEXEC:
                    return start(BOURNE_SHELL, [BOURNE_SHELL, path, *argv[1:]])
                if e.errno not in _NEXT_ENTRY:
                    raise
                if e.errno == errno.EACCES and first_denied is None:
                    first_denied = e
                last = e
    except (OSError, ValueError) as e:
        raise exec_error(command, e) from None
    error = first_denied or last or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    raise exec_error(command, error)


def exec_error(command: str, error: OSError | ValueError) -> LaunchError:
    """Translate a failed exec (or spawn) of COMMAND into env(1)'s 127 or 126."""
    from azexec.redact import looks_secret, show

    found = _exec_error(show(command), error)
    if not looks_secret(command):
        return found
    # A token typed where COMMAND belongs: the same status, and a message that says what happened.
    hint = "a token goes to a --token-* source, COMMAND after --; pipe it to --token-stdin"
    return type(found)(f"COMMAND {show(command)} looks like a token, not a command", hint)


def _exec_error(name: str, error: OSError | ValueError) -> LaunchError:
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return CommandNotFound(f"{name}: command not found", "install it, or check PATH and the spelling")
    if isinstance(error, PermissionError):
        return CommandNotExecutable(f"{name}: permission denied", "make it executable (chmod +x)")
    if isinstance(error, ValueError):  # a NUL in the name or an argument
        return CommandNotExecutable(f"{name}: cannot execute: {error}", "check COMMAND's arguments")
    if error.errno == errno.E2BIG:
        return CommandNotExecutable(
            f"{name}: cannot execute: the arguments and environment are too long",
            "pass fewer or shorter arguments or variables",
        )
    return CommandNotExecutable(f"{name}: cannot execute: {error.strerror}", "check COMMAND and its path")
