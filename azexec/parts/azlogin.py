"""--az-login: a resident part that makes today's az use the identity server.

Released az (2.91.0 and older) ignores AZURE_CLI_ACCESS_TOKEN, but `az login
--identity` speaks the App Service managed-identity protocol. This part makes
a private az configuration directory, logs az in there through the identity
server, points COMMAND at it, and removes it when COMMAND exits. It is the one
place azexec lets anything write to disk: az writes its profile (account and
subscription IDs, never a token) into that directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Mapping

from azexec.errors import AzLoginError, Terminated
from azexec.parts import Added, Context
from azexec.process import signals
from azexec.program import which

#: What may be copied from the user's az directory: output format, defaults, registered clouds.
COPIED = ("config", "clouds.config")


def private_parent(environ: Mapping[str, str]) -> str:
    """Return where the private directory goes: $XDG_RUNTIME_DIR when usable (memory-backed), else /tmp."""
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        with contextlib.suppress(OSError):
            info = os.stat(runtime)
            if info.st_uid == os.getuid() and os.access(runtime, os.W_OK | os.X_OK):
                return runtime
    return tempfile.gettempdir()


def user_config_dir(environ: Mapping[str, str]) -> str:
    """Return the user's own az configuration directory (never written to)."""
    return environ.get("AZURE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".azure")


class AzLogin:
    """Log az in through the identity server, in a private directory that lives as long as COMMAND."""

    def __init__(self, *, subscription: str | None) -> None:
        self.subscription = subscription
        self.directory: str | None = None
        #: The caller's signal mask, for az (resident mode blocks what it forwards; az must not inherit that).
        self.mask: frozenset[int] = frozenset()

    def start(self, context: Context) -> Added:
        """Make the directory, copy the user's settings, run az login and az account set.

        The identity server, started before this part, has put its endpoint in CONTEXT's environment.
        """
        self.mask = context.caller_mask
        found = which("az", context.env)
        if found.path is None or found.status is not None:
            raise AzLoginError("--az-login: az is not on COMMAND's PATH", "install the Azure CLI, or drop --az-login")
        self.directory = tempfile.mkdtemp(prefix="azexec-az-", dir=private_parent(context.env))  # mode 0700
        source = user_config_dir(context.env)
        for name in COPIED:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                shutil.copyfile(os.path.join(source, name), os.path.join(self.directory, name))
        # az's own scratch files (Python's tempfile probe among them) go in the private directory too.
        az_env = {**context.env, "AZURE_CONFIG_DIR": self.directory, "TMPDIR": self.directory}
        self._az(found.path, ["login", "--identity", "--allow-no-subscriptions", "--output", "none"], az_env)
        if self.subscription:
            self._az(found.path, ["account", "set", "--subscription", self.subscription, "--output", "none"], az_env)
        return Added(env=(("AZURE_CONFIG_DIR", self.directory),))

    def running(self) -> None:
        """Nothing to do while COMMAND runs."""

    def stop(self, code: int | None) -> None:
        """Remove the directory, whatever happened."""
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _az(self, path: str, args: list[str], env: dict[str, str]) -> None:
        """Run az ARGS; stdout discarded, stderr shown only on failure; a stop signal kills it."""
        read_err, write_err = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            pid = os.posix_spawn(
                path,
                ["az", *args],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, write_err, 2),
                ],
                setsigmask=self.mask,
                setpgroup=0,
            )
        except OSError as e:
            os.close(read_err)
            raise AzLoginError(f"--az-login: cannot run az: {e.strerror}", "check the az installation") from None
        finally:
            os.close(write_err)
            os.close(devnull)
        errors: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(read_err, errors), daemon=True)
        reader.start()
        status = _wait(pid)
        reader.join()
        if status != 0:
            import sys

            sys.stderr.buffer.write(b"".join(errors))
            sys.stderr.flush()
            raise AzLoginError(
                f"--az-login: az {args[0]} {args[1]} failed (status {status})", "see az's messages above"
            )


def _drain(fd: int, into: list[bytes]) -> None:
    """Read FD to EOF into INTO (az's stderr), keeping at most 1 MiB."""
    size = 0
    try:
        while chunk := os.read(fd, 65536):
            if size < 1 << 20:
                into.append(chunk)
                size += len(chunk)
    finally:
        os.close(fd)


def _wait(pid: int) -> int:
    """Wait for az; a stop signal (blocked in resident mode, so taken here) kills its group first."""
    # The stopping signals that resident mode blocks (it forwards them), so that sigtimedwait can take them.
    stopping = signals("stop") & signals("forward")
    while True:
        info = signal.sigtimedwait(stopping | {signal.SIGCHLD}, 1.0)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if info is not None and info.si_signo in stopping:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise Terminated(info.si_signo)
