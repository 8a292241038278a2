"""Shared fixtures: a token factory, the installed command, and a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "11111111-2222-4333-8444-555555555555"
SUBSCRIPTION = "d1b1c1a1-0000-4000-8000-00000000abcd"
ARM = "https://management.azure.com/"
#: The installed console script, next to this interpreter (works in a venv and without PATH).
AZEXEC = str(Path(sys.executable).with_name("azexec"))

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


@pytest.fixture
def token_factory() -> TokenFactory:
    """Return the token factory."""
    return make_token


@pytest.fixture
def token() -> str:
    """Return a good token, valid for an hour."""
    return make_token()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own Azure or azexec settings out of every test."""
    for name in list(os.environ):
        if name.startswith(("AZURE_CLI_", "AZEXEC_")):
            monkeypatch.delenv(name)


@pytest.fixture
def runner() -> CliRunner:
    """Return a click test runner, for pure option handling."""
    return CliRunner()


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


def alive(pid: int) -> bool:
    """Tell whether PID runs; a zombie nobody reaped yet (PID 1 here may not) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def explain(result: subprocess.CompletedProcess[str]) -> str:
    """Show what a run printed, for assertion messages (python-dotenv's habit)."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture
def private_file(tmp_path: Path) -> Callable[..., Path]:
    """Return a writer of mode-600 files, as a careful user keeps a token."""

    def write(text: str, name: str = "token") -> Path:
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o600)
        return path

    return write
