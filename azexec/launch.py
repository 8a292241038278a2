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


def launch(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with ARGV (POSIX), or run it and exit with its status (Windows)."""
    # os.exec* discards Python's buffers: flush what azexec printed first.
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # pragma: no cover - Windows has no real exec (python-dotenv #566)
        _spawn_and_exit(argv, env)
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except FileNotFoundError:
        raise CommandNotFound(f"{argv[0]}: command not found", "install it, or check PATH and the spelling") from None
    except NotADirectoryError:
        raise CommandNotFound(f"{argv[0]}: command not found", "check the path") from None
    except PermissionError:
        raise CommandNotExecutable(f"{argv[0]}: permission denied", "make it executable (chmod +x)") from None
    except OSError as e:
        if e.errno == errno.ENOEXEC:
            raise CommandNotExecutable(
                f"{argv[0]}: cannot execute (exec format error)", "add a #! line or run it with its interpreter"
            ) from None
        raise LaunchError(f"{argv[0]}: cannot execute: {e.strerror}") from None


def _spawn_and_exit(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:  # pragma: no cover - Windows
    import subprocess

    try:
        completed = subprocess.run(list(argv), env=dict(env), check=False)
    except FileNotFoundError:
        raise CommandNotFound(f"{argv[0]}: command not found", "install it, or check PATH and the spelling") from None
    except PermissionError:
        raise CommandNotExecutable(f"{argv[0]}: permission denied", "check its permissions") from None
    sys.exit(completed.returncode)
