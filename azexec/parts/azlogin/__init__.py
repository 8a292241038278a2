"""--az-login: a resident part that makes today's az use the identity server.

Released az (2.91.0 and older) ignores AZURE_CLI_ACCESS_TOKEN, but `az login
--identity` speaks the App Service managed-identity protocol. This part makes
a private az configuration directory, logs az in there through the identity
server, points COMMAND at it, and removes it when COMMAND exits. It is the one
place azexec lets anything write to disk: az's profile (account and
subscription IDs, never a token) goes into that directory.

Logging in is writing that profile: azexec writes it itself when it can be sure
it is what az would write (parts/azprofile.py), saving two az start-ups; else
az login and az account set run as they always did.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING

from azexec import runner
from azexec.errors import AzLoginError, Refused
from azexec.parts import Added, Context, Preview, Say
from azexec.parts.azlogin import profile as azprofile
from azexec.program import which
from azexec.redact import show
from azexec.say import raw

if TYPE_CHECKING:
    from azexec.parts.identity import IdentityServer

#: What may be copied from the user's az directory: output format, defaults, registered clouds.
COPIED = ("config", "clouds.config")
#: az's caches, copied when they are there: without its command index a fresh directory makes az before
#: 2.73.0 (which has no packaged index) rebuild it, about two seconds. az checks the index's release itself.
CACHES = ("commandIndex.json",)
#: A cache larger than this is not copied (a full command index is a few hundred KiB).
MAX_CACHE_BYTES = 16 << 20
#: Removed for az and COMMAND: Azure Cloud Shell's marker sends az down Cloud Shell's own login and token
#: paths (to login.microsoftonline.com), around the identity server.
NEUTRALISED = ("ACC_CLOUD",)
#: A settings file larger than this is no settings file.
MAX_SETTINGS_BYTES = 1 << 20
#: After this long, az login gets a note saying what azexec waits for (at a terminal; cleared when done).
NOTE_SECONDS = 1.0


def private_parent(environ: Mapping[str, str]) -> str:
    """Return where the private directory goes: $XDG_RUNTIME_DIR when usable (memory-backed), else $TMPDIR or /tmp.

    Chosen by looking, never by writing: tempfile.gettempdir() would write and delete a probe file in the
    directory it picks, a write outside the private directory.
    """
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        with contextlib.suppress(OSError):
            info = os.stat(runtime)
            if info.st_uid == os.getuid() and os.access(runtime, os.W_OK | os.X_OK):
                return runtime
    for candidate in (environ.get("TMPDIR", ""), "/tmp", "/var/tmp", "/usr/tmp"):  # noqa: S108 - where mkdtemp looks
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return os.path.abspath(candidate)
    return os.getcwd()


def user_config_dir(environ: Mapping[str, str]) -> str:
    """Return the user's own az configuration directory (never written to)."""
    return environ.get("AZURE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".azure")


class AzLogin:
    """Log az in through the identity server, in a private directory that lives as long as COMMAND."""

    def __init__(self, server: IdentityServer, *, subscription: str | None, timeout: float, note: Say) -> None:
        self.server = server
        self.subscription = subscription
        #: How long az login (and az account set) may take: --token-cmd-timeout.
        self.timeout = timeout
        self.note = note
        self.directory: str | None = None
        #: The settings copied into the directory (config as written there), for the profile's cloud.
        self.settings: dict[str, str] = {}
        #: The caller's signal mask, for az (resident mode blocks what it forwards; az must not inherit that).
        self.mask: frozenset[int] = frozenset()

    def preview(self, env: Mapping[str, str]) -> Preview:
        """Say what would run before COMMAND, and where; or why it would fail."""
        chosen = f" with {self.subscription} the default" if self.subscription else ""
        steps = [
            f"write az's profile from Resource Manager's list of subscriptions (asked with the token){chosen},"
            " as az login --identity would; when azexec cannot be sure it would match, az does it:",
            "az login --identity --allow-no-subscriptions --output none",
        ]
        if self.subscription:
            steps.append(f"az account set --subscription {self.subscription} --output none")
        steps.append(
            "an az before 2.73.0 asks through App Service's 2017 protocol:"
            " COMMAND then gets MSI_ENDPOINT, MSI_SECRET and APPSETTING_WEBSITE_SITE_NAME too"
        )
        found = which("az", env)
        failure = None if found.path and found.status is None else "--az-login: az is not on COMMAND's PATH"
        directory = f"<a new private directory in {private_parent(env)}, removed at exit>"
        added: dict[str, str | None] = {"AZURE_CONFIG_DIR": directory, "AZURE_LOGGING_LOG_DIR": directory}
        added.update((name, None) for name in NEUTRALISED if name in env)
        if "AZURE_EXTENSION_DIR" not in env:
            added["AZURE_EXTENSION_DIR"] = (
                os.path.join(user_config_dir(env), "cliextensions") + " (unless config sets it)"
            )
        return Preview("az login", env=tuple(added.items()), steps=tuple(steps), failure=failure)

    def start(self, context: Context) -> Added:
        """Make the directory, copy the user's settings, and log az in (write its profile, or run az login).

        The identity server, started before this part, has put its endpoint in CONTEXT's environment.
        """
        self.mask = context.caller_mask
        found = which("az", context.env)
        if found.path is None or found.status is not None:
            raise AzLoginError("--az-login: az is not on COMMAND's PATH", "install the Azure CLI, or drop --az-login")
        self.directory = tempfile.mkdtemp(prefix="azexec-az-", dir=private_parent(context.env))  # 0700
        # One deadline for the whole login (listing, the token command run for it, az login, az account set),
        # and the stop signals end it at once: stop() then removes the directory.
        with runner.Step(self.timeout):
            return self._log_in(found.path, context)

    def _log_in(self, az: str, context: Context) -> Added:
        """Log az in, in the private directory: write its profile, or run az login (and az account set)."""
        directory = self.directory
        assert directory is not None, "made by start()"
        added = {"AZURE_CONFIG_DIR": directory, **self._copy_settings(context.env, directory)}
        base = {name: value for name, value in context.env.items() if name not in NEUTRALISED}
        removed: dict[str, str | None] = dict.fromkeys(NEUTRALISED)
        release = azprofile.az_release(az)
        if release is not None and OLDEST_AZ <= release <= NEWEST_AZ and self._write_profile(base, directory):
            # az before 2.73.0 speaks only App Service's 2017 protocol: known old, so offered for COMMAND.
            legacy = self.server.offer_legacy() if release < FIRST_MSAL_AZ else {}
            return Added(env=tuple({**removed, **added, **legacy}.items()))
        # az's own scratch files (Python's tempfile probe among them) go in the private directory too.
        # az before 2.73.0 speaks only App Service's 2017 protocol: offered to az login, and kept for
        # COMMAND only if az used it (a newer az takes IDENTITY_ENDPOINT, and never sees it again).
        legacy = self.server.offer_legacy()
        az_env = {**base, **added, **legacy, "TMPDIR": directory}
        self._az(az, ["login", "--identity", "--allow-no-subscriptions", "--output", "none"], az_env)
        if not self.server.keep_legacy():
            az_env = {**base, **added, "TMPDIR": directory}
            legacy = {}
        if self.subscription:
            self._az(az, ["account", "set", "--subscription", self.subscription, "--output", "none"], az_env)
        return Added(env=tuple({**removed, **added, **legacy}.items()))

    def _write_profile(self, env: Mapping[str, str], directory: str) -> bool:
        """Write what az login (and az account set) would, from Resource Manager's list; False when unsure."""
        cloud = azprofile.active_cloud(self.settings.get("config", ""), self.settings.get("clouds.config", ""), env)
        if cloud is None:
            return False
        try:
            held = self.server.provider.get(azprofile.ARM_RESOURCE)
        except Refused as e:
            self._in_time(f"--az-login: {e}")
            return False
        tenant = held.claims.tenant if held.claims is not None else None
        if tenant is None:
            return False
        listed = azprofile.list_subscriptions(cloud, held.token.reveal(), env, self.timeout)
        self._in_time(
            f"--az-login: Resource Manager's list of subscriptions did not come within {self.timeout:g}s",
            "check that Azure Resource Manager answers (and any proxy); raise --token-cmd-timeout",
        )
        text = (
            None
            if listed is None
            else azprofile.profile(listed, tenant=tenant, cloud=cloud, subscription=self.subscription)
        )
        if text is None:
            return False
        clouds = azprofile.clouds_config(
            self.settings.get("clouds.config", ""), cloud, azprofile.default_subscription(text)
        )
        _write_private(os.path.join(directory, "azureProfile.json"), "\ufeff" + text)  # az writes UTF-8 with a BOM
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, "clouds.config"))
        _write_private(os.path.join(directory, "clouds.config"), clouds)
        return True

    def _in_time(self, message: str, hint: str | None = None) -> None:
        """Fail with MESSAGE when the login's deadline has passed: az login would be killed at once."""
        if runner.budget(self.timeout)[0] <= 0:
            raise AzLoginError(message, hint)

    def _copy_settings(self, env: Mapping[str, str], directory: str) -> dict[str, str]:
        """Copy the user's settings into DIRECTORY so that nothing az does leaves it; return variables to set.

        Log files go into the private directory (a log holds the endpoint's secret
        path); extensions stay where the user's az keeps them.
        """
        import configparser
        import io

        source = user_config_dir(env)
        text = {name: _read_setting(os.path.join(source, name)) for name in COPIED}
        config = configparser.ConfigParser(interpolation=None)
        try:
            config.read_string(text["config"] or "")
        except configparser.Error:
            where = show(os.path.join(source, "config"))
            raise AzLoginError(f"--az-login: {where} is not in az's config format", _FIX) from None
        # AZURE_LOGGING_LOG_DIR outranks the config's log_dir (and a parent's value): logs stay private.
        added = {"AZURE_LOGGING_LOG_DIR": directory}
        if "AZURE_EXTENSION_DIR" not in env and not config.has_option("extension", "dir"):
            added["AZURE_EXTENSION_DIR"] = os.path.join(source, "cliextensions")
        rendered = io.StringIO()
        config.write(rendered)
        _write_private(os.path.join(directory, "config"), rendered.getvalue())
        if text["clouds.config"] is not None:
            _write_private(os.path.join(directory, "clouds.config"), text["clouds.config"])
        self.settings = {"config": rendered.getvalue(), "clouds.config": text["clouds.config"] or ""}
        for name in CACHES:
            cached = _read_cache(os.path.join(source, name))
            if cached is not None:
                _write_private(os.path.join(directory, name), cached)
        return added

    def running(self) -> None:
        """Nothing to do while COMMAND runs."""

    def stop(self, code: int | None) -> None:
        """Remove the directory, whatever happened."""
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _az(self, path: str, args: list[str], env: dict[str, str]) -> None:
        """Run az ARGS; stdout discarded, stderr shown only on failure; a stop signal kills it."""
        what = f"az {args[0]} {args[1]}"
        status, _, errors = self._run(path, args, env, note=f"waiting for {what} (through azexec's identity server)…")
        if status == 0:
            return
        if status is not None and args[0] == "login":
            # Outside the releases --az-login is tested with, az's own MSI errors mislead: say what is wrong.
            version = self._version(path, env)
            if version is not None and not OLDEST_AZ <= _release(version) <= NEWEST_AZ:
                raise AzLoginError(
                    f"--az-login: az {version} failed to log in; --az-login works with az {_dotted(OLDEST_AZ)}"
                    f" to {_dotted(NEWEST_AZ)}",
                    "run an az in that range (azexec finds az on COMMAND's PATH)",
                )
        raw(errors)
        if status is None:
            raise AzLoginError(
                f"--az-login: {what} did not finish within {self.timeout:g}s and was killed",
                "check that Azure Resource Manager answers (and any proxy); raise --token-cmd-timeout",
            )
        raise AzLoginError(f"--az-login: {what} failed (status {status})", "see az's messages above")

    def _version(self, path: str, env: dict[str, str]) -> str | None:
        """Ask az for its release (az version); None when it cannot say."""
        from azexec.bounded import load_json

        status, out, _ = self._run(path, ["version", "--output", "json"], env, note="")
        try:
            version = load_json(out)["azure-cli"] if status == 0 else None
        except (ValueError, KeyError, TypeError):
            return None
        return version if isinstance(version, str) and _RELEASE.fullmatch(version) else None

    def _run(self, path: str, args: list[str], env: dict[str, str], *, note: str) -> tuple[int | None, bytes, bytes]:
        """Run az ARGS in a process group of its own, within what is left of the login's deadline; return its
        status (None: killed at the deadline), its stdout and its stderr; NOTE at a terminal after NOTE_SECONDS."""
        noting = runner.Note(NOTE_SECONDS, self.note, note) if note else None
        try:
            reaped = runner.run(["az", *args], env, self.timeout, path=path, sigmask=self.mask, note=noting)
        except OSError as e:
            raise AzLoginError(f"--az-login: cannot run az: {e.strerror}", "check the az installation") from None
        return reaped.status, reaped.stdout, reaped.stderr


#: The az releases --az-login is tested with (tests/test_azlogin.py: AZ_VERSIONS): the oldest and the newest.
OLDEST_AZ = (2, 45, 0)
NEWEST_AZ = (2, 91, 0)
#: The first az whose managed-identity login is MSAL's (IDENTITY_ENDPOINT); before it, msrestazure's.
FIRST_MSAL_AZ = (2, 73, 0)
_RELEASE = re.compile(r"\d{1,4}\.\d{1,4}\.\d{1,4}")


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _dotted(release: tuple[int, ...]) -> str:
    return ".".join(map(str, release))


_FIX = "fix or move it: --az-login copies az's settings from it"


class _Unfit(Exception):
    """A file that is there, but not one azexec reads: not regular, or too large."""


def _read_regular(path: str, limit: int) -> bytes | None:
    """Return PATH's bytes (None when there is no such file); raise _Unfit or OSError for anything else.

    Opened without blocking (a FIFO never hangs azexec) and read at most LIMIT bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Unfit("is not a regular file")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise _Unfit(f"is larger than {limit >> 20} MiB")
        return data
    finally:
        os.close(fd)


def _read_setting(path: str) -> str | None:
    """Return the settings file PATH (None when there is none); anything but a small regular text file is an error."""
    try:
        data = _read_regular(path, MAX_SETTINGS_BYTES)
        return None if data is None else data.decode("utf-8")
    except _Unfit as e:
        raise AzLoginError(f"--az-login: {show(path)} {e}", _FIX) from None
    except OSError as e:
        raise AzLoginError(f"--az-login: cannot read {show(path)}: {e.strerror}", _FIX) from None
    except UnicodeDecodeError:
        raise AzLoginError(f"--az-login: {show(path)} is not UTF-8 text", _FIX) from None


def _read_cache(path: str) -> str | None:
    """Return az's cache file PATH when it is a regular UTF-8 file of a sane size; None otherwise (az rebuilds it)."""
    try:
        data = _read_regular(path, MAX_CACHE_BYTES)
        return None if data is None else data.decode("utf-8")
    except (_Unfit, OSError, UnicodeDecodeError):
        return None


def _write_private(path: str, text: str) -> None:
    """Write TEXT to PATH, a new file only its owner can read."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "w", encoding="utf-8") as f:
        f.write(text)
