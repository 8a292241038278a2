"""Fixtures: tokens, a clean environment, a click runner, private files, terminals (helpers live in helpers.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import SURFACES, Terminal, TokenFactory, make_token, write_private


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--surface",
        choices=["linux", "macos"],
        default="linux",
        help="macos: run azexec's own processes on a Python without the names CPython has on Linux alone",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--surface") == "macos":
        # Every azexec the tests start inherits it; its sitecustomize takes it off again for COMMAND.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(SURFACES / "macos"), os.environ.get("PYTHONPATH")])
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under --surface=macos, leave out what is Linux's by nature (they run in the normal mode)."""
    if config.getoption("--surface") != "macos":
        return
    kept = [item for item in items if item.get_closest_marker("linux_only") is None]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


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


@pytest.fixture
def private_file(tmp_path: Path) -> Callable[..., Path]:
    """Return a writer of mode-600 files, as a careful user keeps a token."""

    def write(text: str, name: str = "token") -> Path:
        return write_private(tmp_path / name, text)

    return write


@pytest.fixture
def terminal() -> Iterator[Callable[[list[str], dict[str, str]], Terminal]]:
    """Start azexec on a terminal; whatever a test leaves running is killed afterwards."""
    started: list[Terminal] = []

    def start(args: list[str], env: dict[str, str], **options: Any) -> Terminal:
        started.append(Terminal(args, env, **options))
        return started[-1]

    yield start
    for term in started:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
        with contextlib.suppress(OSError):
            os.close(term.master)


@pytest.fixture(scope="session")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real azure-identity and its dependencies, for a container's Python (bookworm's 3.11): the docker and
    podman tests both mount it."""
    import sys

    from dockerd import IMAGE_PYTHON, copy_distribution

    assert sys.version_info[:2] == IMAGE_PYTHON, f"the image's Python is {IMAGE_PYTHON}: run the suite on it"
    target = tmp_path_factory.mktemp("sdk")
    assert "azure-identity" in copy_distribution("azure-identity", target)
    return target
