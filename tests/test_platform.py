"""Where azexec runs: Linux, macOS (proven here on a Python without Linux's own names), and a refusal elsewhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import SURFACES, base_env, explain, make_token, run

REFUSAL = "azexec: this system is not supported: azexec runs on Linux and macOS; on Windows, run it inside WSL\n"


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["--token-env", "T", "--", "true"]],
    ids=["version", "help", "a run"],
)
def test_without_the_posix_modules_azexec_refuses_in_one_line(args: list[str]) -> None:
    """No resource, fcntl or termios (Windows' Python): one line and 125, before anything else, no traceback."""
    result = run(*args, env=base_env(T=make_token(), PYTHONPATH=str(SURFACES / "nounix")))
    assert (result.returncode, result.stdout, result.stderr) == (125, "", REFUSAL), explain(result)


def test_python_m_azexec_refuses_the_same_way() -> None:
    """`python -m azexec` goes through the same check."""
    result = subprocess.run(
        [sys.executable, "-m", "azexec", "--version"],
        capture_output=True,
        text=True,
        env=base_env(PYTHONPATH=str(SURFACES / "nounix")),
        check=False,
    )
    assert (result.returncode, result.stderr) == (125, REFUSAL), explain(result)


PROBE = (
    "import os, select, signal; print(hasattr(os, 'pipe2'), hasattr(signal, 'sigwaitinfo'), hasattr(select, 'epoll'))"
)


def test_the_macos_surface_removes_linux_names() -> None:
    """The test mode's Python has no pipe2, sigwaitinfo or epoll: what azexec must do without on macOS."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=base_env(PYTHONPATH=str(SURFACES / "macos")),
        check=False,
    )
    assert result.stdout == "False False False\n", explain(result)


def test_the_macos_surface_is_not_inherited_by_command() -> None:
    """Its sitecustomize takes itself off PYTHONPATH: COMMAND runs on the full Python, as it would on a Mac."""
    env = base_env(T=make_token(), PYTHONPATH=str(SURFACES / "macos"))
    result = run(
        "--no-exec",
        "--token-env",
        "T",
        "--",
        sys.executable,
        "-c",
        PROBE + "; print(os.environ.get('PYTHONPATH'))",
        env=env,
    )
    assert result.stdout == "True True True\nNone\n", explain(result)


def test_the_suite_runs_azexec_on_the_surface_it_was_asked_for(request: pytest.FixtureRequest) -> None:
    """Every process the suite starts has the surface of --surface: the whole suite proves what it claims."""
    expected = {"linux": "True True True\n", "macos": "False False False\n"}[request.config.getoption("--surface")]
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=base_env(), check=False)
    assert result.stdout == expected, explain(result)
