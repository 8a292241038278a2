"""Start-up guard: each path imports only what it needs (no timing is asserted here).

The design floor (bench/floor.py) does only what azexec cannot avoid; azexec may
import its own modules on top of it, and nothing else.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import base_env, make_token

FLOOR = Path(__file__).resolve().parent.parent / "bench" / "floor.py"
AZEXEC_MAIN = "from azexec.cli import main; main()"
#: Imported on top of the floor, and why.
ALLOWED_EXTRA = {
    "signal",  # exec must restore SIGPIPE, which Python ignores, for COMMAND (~0.7 ms)
    "resource",  # no core dump of azexec may hold the token: RLIMIT_CORE (~0.4 ms)
}
if sys.version_info < (3, 11):
    # pyjwt without cryptography (which azexec keeps out) takes typing.Never from typing_extensions
    # before 3.11 (~3 ms): the floor, which imports cryptography in this suite's venv, does not.
    ALLOWED_EXTRA.add("typing_extensions")


#: The identity server's modules: imported only with --identity-server.
IDENTITY_SERVER = {"azexec.parts.identity", "azexec.parts.identity.provider", "http.server", "socketserver"}


def imported(*argv: str) -> set[str]:
    """Run python -X importtime ARGV and return the modules it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    } - {"package"}


@pytest.fixture
def token_file(private_file: Callable[..., Path]) -> str:
    return str(private_file(make_token()))


def test_token_file_path_imports_nothing_beyond_the_floor(token_file: str) -> None:
    """`azexec -q --token-file t -- true` imports the floor's modules plus azexec's own, no more."""
    floor = imported(str(FLOOR), "-q", "--token-file", token_file, "--", "true")
    azexec = imported("-c", AZEXEC_MAIN, "-q", "--token-file", token_file, "--", "true")
    extra = {m for m in azexec - floor if m != "azexec" and not m.startswith("azexec.")}
    assert extra <= ALLOWED_EXTRA, f"imported beyond the design floor: {sorted(extra - ALLOWED_EXTRA)}"
    lazy = {"azexec.tokencmd", "azexec.report", "dotenv", "subprocess", "getpass", "shlex", *IDENTITY_SERVER}
    # Beyond the floor: on Python 3.10, click itself imports subprocess (through uuid and platform).
    assert not (azexec - floor) & lazy


def test_env_file_path_adds_only_python_dotenv(private_file: Callable[..., Path]) -> None:
    """--env-file pays for python-dotenv, and not for the command machinery."""
    env_file = str(private_file(f"AZURE_CLI_ACCESS_TOKEN={make_token()}\n", name="a.env"))
    floor = imported(str(FLOOR), "-q", "--env-file", env_file, "--", "true")
    azexec = imported("-c", AZEXEC_MAIN, "-q", "--env-file", env_file, "--", "true")
    extra = {m for m in azexec - floor if m != "azexec" and not m.startswith("azexec.")}
    assert extra <= ALLOWED_EXTRA | {"io"}, sorted(extra)
    assert "dotenv" in azexec
    assert not (azexec - floor) & {"azexec.tokencmd", "subprocess"}


def test_token_cmd_path_adds_subprocess_not_dotenv(token_file: str) -> None:
    """--token-cmd pays for subprocess, and not for python-dotenv."""
    azexec = imported("-c", AZEXEC_MAIN, "-q", "--token-cmd", f"cat {token_file}", "--", "true")
    assert {"subprocess", "azexec.tokencmd"} <= azexec
    assert "dotenv" not in azexec


@pytest.mark.parametrize("mode", ["--no-exec", "--mask"])
def test_other_resident_modes_pay_nothing_for_the_identity_server(token_file: str, mode: str) -> None:
    """--no-exec and --mask import none of the identity server's modules."""
    resident = imported("-c", AZEXEC_MAIN, "-q", mode, "--token-file", token_file, "--", "true")
    assert not resident & IDENTITY_SERVER


def test_the_identity_server_is_imported_when_used(token_file: str) -> None:
    """--identity-server loads it."""
    serving = imported("-c", AZEXEC_MAIN, "-q", "--identity-server", "--token-file", token_file, "--", "true")
    assert serving >= IDENTITY_SERVER


#: Prints, at exit, the cryptography modules loaded.
LOADED_CRYPTOGRAPHY = (
    "import atexit, sys; "
    "atexit.register(lambda: print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))); "
    + AZEXEC_MAIN
)


def test_a_venv_holding_cryptography_does_not_make_azexec_load_it(token_file: str) -> None:
    """pyjwt imports cryptography whenever it is there (a venv with azure-identity or azure-cli); azexec needs none."""
    assert importlib.util.find_spec("cryptography") is not None, "the suite's venv holds azure-identity"
    result = subprocess.run(
        [sys.executable, "-c", LOADED_CRYPTOGRAPHY, "-q", "--dry-run", "--token-file", token_file, "--", "true"],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
