"""Test helpers: a token factory, the installed command, a process runner and a pty driver.

Plain functions and classes, imported by the tests (conftest.py holds fixtures only).
"""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

from azexec.plan import Request

if TYPE_CHECKING:
    from azexec.parts import Part
    from azexec.parts.identity.provider import Provider
    from azexec.sources import TokenSource
    from azexec.token import TokenPolicy

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "11111111-2222-4333-8444-555555555555"
SUBSCRIPTION = "d1b1c1a1-0000-4000-8000-00000000abcd"
ARM = "https://management.azure.com/"
#: The installed console script, next to this interpreter (works in a venv and without PATH).
AZEXEC = str(Path(sys.executable).with_name("azexec"))
#: Directories whose sitecustomize makes a Python look like another platform's (tests/surface/*).
SURFACES = Path(__file__).parent / "surface"

TokenFactory = Callable[..., str]


def make_token(*, lifetime: float = 3600, drop: tuple[str, ...] = (), **claims: Any) -> str:
    """Make an HS256 JWT with made-up Azure-like claims; azexec never checks signatures."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "aud": ARM,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "tid": TENANT,
        "oid": str(uuid.uuid4()),
        "upn": "alice@contoso.example",
        "scp": "user_impersonation",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + int(lifetime),
    }
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    return jwt.encode(payload, "test-key-that-is-long-enough-for-hs256!", algorithm="HS256")


#: The real az releases the suite runs, newest first, from the one list scripts/install-test-tools installs.
AZ_RELEASES = Path(__file__).parent / "az-releases.txt"
AZ_VERSIONS = tuple(
    line.split()[0] for line in AZ_RELEASES.read_text().split("\n") if line and not line.startswith("#")
)
AZ_VERSION = AZ_VERSIONS[0]


def az_bin(version: str) -> Path:
    """The bin directory of the cached virtualenv holding azure-cli VERSION."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "azexec-tests" / f"azure-cli-{version}" / "bin"


def nearly_expired(**claims: Any) -> str:
    """Make a token near the end of an hour's life: 5 minutes left, so the identity server replaces it."""
    return make_token(lifetime=300, iat=int(time.time()) - 3300, **claims)


def base_env(**extra: str) -> dict[str, str]:
    """Return this process's environment (already cleaned) plus EXTRA."""
    env = dict(os.environ)
    env.update(extra)
    return env


def run(
    *args: str,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run the installed azexec as a real process; stdin is empty unless INPUT is given."""
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        [AZEXEC, *args],
        input=data if data is not None else b"",
        capture_output=True,
        env=dict(env) if env is not None else base_env(),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


def wait_until(predicate: Callable[[], object], *, within: float = 20, what: str = "the condition") -> None:
    """Return once PREDICATE() is true; fail saying WHAT never happened after WITHIN seconds.

    The one poll loop of the suite: for what no event or pipe can announce (a
    process appearing in /proc, a file another process writes).
    """
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never happened within {within:g}s"
        time.sleep(0.02)


def write_private(path: Path, text: str) -> Path:
    """Write TEXT to PATH with mode 600, as a careful user keeps a token; return PATH."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def claims_of(token: str) -> dict[str, Any]:
    """Return a test token's claims, unverified."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


#: A stand-in for `az account get-access-token --resource R`: prints a token for R, living LIFETIME
#: more seconds, issued AGE seconds ago, and appends R to the file COUNT (one line a run). Arguments:
#: R COUNT LIFETIME AGE. Lines added after it (mint_command's EXTRA) see the token as `token`.
MINT = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from helpers import make_token
with open(sys.argv[2], "a") as f:
    f.write(sys.argv[1] + "\\n")
import time
token = make_token(aud=sys.argv[1], lifetime=float(sys.argv[3]), iat=int(time.time()) - int(sys.argv[4]))
print(token)
"""


def mint_command(
    directory: Path, *, resource: str = "{resource}", lifetime: float = 3600, age: int = 60, extra: str = ""
) -> str:
    """Write MINT (plus EXTRA lines) into DIRECTORY; return a --token-cmd that runs it, counting in DIRECTORY/count."""
    script = write_private(directory / "mint.py", MINT + extra)
    return f"{sys.executable} {script} {resource} {directory / 'count'} {lifetime:g} {age}"


def alive(pid: int) -> bool:
    """Tell whether PID runs; a zombie nobody reaped yet (PID 1 here may not) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def all_gone(pids: list[int], within: float = 5.0) -> bool:
    """Tell whether every PID is dead, allowing WITHIN seconds.

    SIGKILL is sent synchronously but acted on when the target is next
    scheduled: on a loaded CI machine a killed grandchild can linger for a
    moment. A survivor of a missed kill (a `sleep 300`) still fails.
    """
    try:
        wait_until(lambda: not any(alive(pid) for pid in pids), within=within)
    except AssertionError:
        return False
    return True


def explain(result: subprocess.CompletedProcess[str]) -> str:
    """Show what a run printed, for assertion messages (python-dotenv's habit)."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def request(**given: Any) -> Request:
    """Return a Request as the CLI builds it: a bare command line's defaults, and GIVEN."""
    return Request(**given)


class Terminal:
    """azexec running on a pty that is its controlling terminal, as in an interactive shell."""

    def __init__(
        self, args: list[str], env: dict[str, str], *, program: str = AZEXEC, stdin: int | None = None
    ) -> None:
        """Run PROGRAM ARGS on a new pty; STDIN replaces the pty as stdin (it stays the controlling terminal)."""
        self.master, slave = os.openpty()

        def take_terminal() -> None:
            os.setsid()
            fcntl.ioctl(1, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [program, *args],
            stdin=slave if stdin is None else stdin,
            stdout=slave,
            stderr=slave,
            env=env,
            preexec_fn=take_terminal,
        )
        os.close(slave)
        self.output = b""

    def expect(self, text: str, timeout: float = 20) -> None:
        """Read until TEXT has appeared."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared in {self.output!r}"
            if select.select([self.master], [], [], remaining)[0]:
                try:
                    self.output += os.read(self.master, 4096)
                except OSError:  # the pty closes when the last process on it exits
                    break
        assert text.encode() in self.output, self.output

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> int:
        """Drain the output and return the exit status."""
        status = self.proc.wait(timeout=20)
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        return status


def held(token: str, *, source: TokenSource | None = None, policy: TokenPolicy | None = None) -> Provider:
    """Return a provider holding TOKEN; later tokens come from SOURCE (default: none), checked by POLICY."""
    from azexec import sources
    from azexec.parts.identity.provider import Provider
    from azexec.redact import Secret
    from azexec.token import Tenant, TokenPolicy
    from azexec.tokencmd import Jobs

    # The first token as it was accepted at start; POLICY (default: the tenant's) is for later ones.
    first = TokenPolicy().accept(Secret(token, "the test"))
    policy = policy or TokenPolicy(tenants=(Tenant(TENANT, "the test"),))
    source = source or sources.Variable("NOT_READ_AGAIN", {}, label="--token-env")
    return Provider(first, source=source, policy=policy, jobs=Jobs())


def added_by(part: Part, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Start PART in ENV and stop it at once, whatever happens; return COMMAND's environment with what it added."""
    try:
        return start_part(part, env)
    finally:
        part.stop(0)


def start_part(part: Part, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Start PART as resident mode would, in ENV; return COMMAND's environment with what PART added."""
    import signal
    from types import MappingProxyType

    from azexec.parts import Context, Secrets

    def fail(error: Exception) -> None:
        raise AssertionError(f"the part failed: {error}")

    mask = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, set()))
    result = dict(env or {})
    added = part.start(Context(MappingProxyType(dict(result)), mask, (), fail, Secrets()))
    for name, value in added.env:
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result
