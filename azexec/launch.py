"""Build the child's environment and hand over to COMMAND."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import NoReturn

from azexec.errors import CommandNotExecutable, CommandNotFound, LaunchError


def child_environment(
    parent: Mapping[str, str], variables: Mapping[str, str | None], removed: Iterable[str] = ()
) -> dict[str, str]:
    """Return PARENT with VARIABLES set; a None value, or a REMOVED name, is deleted.

    Deleting matters: a stale subscription inherited from the parent must never
    pair with a new token.
    """
    env = dict(parent)
    for name in removed:
        env.pop(name, None)
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def default_shell(environ: Mapping[str, str]) -> list[str]:
    """Return the user's shell, for when no COMMAND is given at a terminal."""
    return [environ.get("SHELL") or "/bin/sh"]


def which(command: str, env: Mapping[str, str]) -> str | None:
    """Find COMMAND the way exec will, on the child's PATH."""
    import shutil

    return shutil.which(command, path=env.get("PATH", os.defpath))


#: Signals Python ignores for itself; an exec'd program would inherit the SIG_IGN.
PYTHON_IGNORED = ("SIGPIPE", "SIGXFSZ")


def launch(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with ARGV, as env(1) does (POSIX only)."""
    import signal

    # os.exec* discards Python's buffers: flush what azexec printed first.
    sys.stdout.flush()
    sys.stderr.flush()
    # Otherwise `azexec … -- yes | head -1` would leave yes writing into EPIPE forever.
    for name in PYTHON_IGNORED:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except OSError as e:
        raise exec_error(argv[0], e) from None


def exec_error(command: str, error: OSError) -> LaunchError:
    """Translate a failed exec (or spawn) of COMMAND into env(1)'s 127 or 126."""
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return CommandNotFound(f"{command}: command not found", "install it, or check PATH and the spelling")
    if isinstance(error, PermissionError):
        return CommandNotExecutable(f"{command}: permission denied", "make it executable (chmod +x)")
    if error.errno == errno.ENOEXEC:
        return CommandNotExecutable(
            f"{command}: cannot execute (exec format error)", "add a #! line or run it with its interpreter"
        )
    return LaunchError(f"{command}: cannot execute: {error.strerror}")
