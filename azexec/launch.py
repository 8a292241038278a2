"""Build the child's environment and hand over to COMMAND, finding it as execvp(3) would."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, NoReturn, TypeVar

from azexec.errors import CommandNotExecutable, CommandNotFound, LaunchError

if TYPE_CHECKING:
    from azexec.provider import Provider

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
    return [environ.get("SHELL") or BOURNE_SHELL]


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
    """Predict what exec will do with COMMAND, for --dry-run."""
    denied = None
    for path in candidates(command, env):
        try:
            if os.path.isdir(path):
                denied = denied or path
                continue
            if os.access(path, os.X_OK):
                return Found(path, None, "")
            if os.path.exists(path):
                denied = denied or path
        except (OSError, ValueError):  # a name too long, or with a NUL
            return Found(None, 126, "its name cannot be executed")
    if denied is not None:
        return Found(denied, 126, "not executable")
    return Found(None, 127, "not found")


#: Signals Python ignores for itself; an exec'd program would inherit the SIG_IGN.
PYTHON_IGNORED = ("SIGPIPE", "SIGXFSZ")

Say = Callable[[str], None]


class Resident(NamedTuple):
    """What must live beside COMMAND; when nothing must, azexec execs."""

    #: --no-exec: stay as COMMAND's parent even with nothing else to do.
    stay: bool
    #: --mask: the secret to replace in COMMAND's output.
    mask: str | None
    #: The token's expiry, for the expiry watch (None: not decoded).
    expires_at: float | None
    #: --identity-server: where its tokens come from.
    identity: Provider | None
    #: The resolved tenant and subscription, for the identity server's ARM_* variables.
    tenant: str | None
    subscription: str | None
    #: --az-login: log today's az in through the identity server, in a private directory.
    az_login: bool


def start(argv: Sequence[str], env: Mapping[str, str], resident: Resident, *, warn: Say, diagnose: Say) -> NoReturn:
    """Run ARGV: exec it, or stay as its parent with the parts RESIDENT asks for.

    WARN prints the expiry warnings (silenced by -q); DIAGNOSE explains a failure after COMMAND exits.
    """
    if os.name == "posix" and not resident.stay and resident.mask is None and resident.identity is None:
        execute(argv, env)
    from azexec import supervise

    parts: list[supervise.Part] = []
    if resident.identity is not None:
        from azexec.identity import IdentityServer

        parts.append(IdentityServer(resident.identity, tenant=resident.tenant, subscription=resident.subscription))
        if resident.az_login:
            from azexec.azlogin import AzLogin

            parts.append(AzLogin(subscription=resident.subscription, environ=os.environ))
    if resident.mask is not None:
        from azexec.mask import Mask

        parts.append(Mask(resident.mask))
    # A token the identity server will refresh does not expire for COMMAND: nothing to warn of.
    refreshed = resident.identity is not None and resident.identity.refreshable()
    if resident.expires_at is not None and not refreshed:
        from azexec.watch import ExpiryWatch

        parts.append(ExpiryWatch(resident.expires_at, warn=warn, diagnose=diagnose))
    supervise.run(argv, env, parts)


def execute(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with ARGV, as env(1) does (POSIX only)."""
    import signal

    from azexec import process

    process.flush_standard_streams()
    # Otherwise `azexec … -- yes | head -1` would leave yes writing into EPIPE forever.
    for name in PYTHON_IGNORED:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    # While the caller's core limit is back, a signal that would dump azexec
    # (and the token with it) is only noted; exec resets the handlers for COMMAND.
    for number in process.signal_numbers(process.CORE_SIGNALS):
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
    from azexec.redact import show

    name = show(command)
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
