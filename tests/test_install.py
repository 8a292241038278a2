"""Any installer: the sdist and wheel build, and pip, pipx and uv each give an azexec that works and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import TENANT, base_env, explain, make_token

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: Installs fetch click, pyjwt and python-dotenv from the package index: minutes at worst, never forever.
INSTALL_TIMEOUT = 600


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the sdist, then the wheel from it (as `python -m build` does): what a release would ship."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert len(list(out.glob("azexec-*.tar.gz"))) == 1
    (built,) = out.glob("azexec-*-py3-none-any.whl")
    return built


def _pip(home: Path, wheel: Path, env: dict[str, str]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, timeout=120)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True, env=env, timeout=INSTALL_TIMEOUT)
    return home / "venv" / "bin" / "azexec"


def _pipx(home: Path, wheel: Path, env: dict[str, str]) -> Path:
    env = {**env, "PIPX_HOME": str(home / "pipx"), "PIPX_BIN_DIR": str(home / "bin"), "PIPX_MAN_DIR": str(home / "man")}
    subprocess.run(
        [str(BIN / "pipx"), "install", str(wheel)], check=True, capture_output=True, env=env, timeout=INSTALL_TIMEOUT
    )
    return home / "bin" / "azexec"


def _uv(home: Path, wheel: Path, env: dict[str, str]) -> Path:
    env = {
        **env,
        "UV_TOOL_DIR": str(home / "tools"),
        "UV_TOOL_BIN_DIR": str(home / "bin"),
        "UV_CACHE_DIR": str(home / "cache"),
    }
    uv = [str(BIN / "uv"), "tool", "install", "--python", sys.executable, str(wheel)]
    subprocess.run(uv, check=True, capture_output=True, env=env, timeout=INSTALL_TIMEOUT)
    return home / "bin" / "azexec"


INSTALLERS: dict[str, Callable[[Path, Path, dict[str, str]], Path]] = {"pip": _pip, "pipx": _pipx, "uv tool": _uv}


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ROOT, with its size and modification time."""
    return {str(path): (path.stat().st_size, path.stat().st_mtime_ns) for path in root.rglob("*") if path.is_file()}


def _home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A temporary home, and an environment that points every per-user directory into it."""
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    env = {k: v for k, v in base_env().items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), XDG_CACHE_HOME=str(home / ".cache"))
    return home, env


@pytest.mark.parametrize("installer", list(INSTALLERS))
def test_an_installed_azexec_runs_a_token_through_and_writes_nothing(
    wheel: Path, tmp_path: Path, installer: str, private_file: Callable[..., Path]
) -> None:
    """Installed by INSTALLER into a fresh home: the token reaches the child, and no file appears or changes there."""
    home, env = _home(tmp_path)
    azexec = INSTALLERS[installer](home, wheel, env)
    token = private_file(make_token())
    before = _files(home)
    for mode in ([], ["--no-exec"], ["--dry-run"]):
        args = [str(azexec), *mode, "--token-file", str(token), "--", "printenv", "AZURE_CLI_TENANT_ID"]
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert result.returncode == 0, explain(result)
        assert TENANT in result.stdout, explain(result)
    assert _files(home) == before


@pytest.mark.parametrize("installer", list(INSTALLERS))
def test_the_manual_is_reachable_however_azexec_was_installed(wheel: Path, tmp_path: Path, installer: str) -> None:
    """`azexec --man` shows the man page after pip, pipx and uv tool install alike (uv links no man page, so
    `man azexec` alone cannot find it there)."""
    home, env = _home(tmp_path)
    azexec = INSTALLERS[installer](home, wheel, env)
    result = subprocess.run(
        [str(azexec), "--man"], capture_output=True, text=True, env={**env, "MANPAGER": "cat", "MANWIDTH": "80"},
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    assert "azexec - Run COMMAND with an Azure access token" in " ".join(result.stdout.split())
    assert "--identity-server" in result.stdout


def test_python_m_azexec_writes_no_bytecode_but_its_package_marker(
    wheel: Path, tmp_path: Path, private_file: Callable[..., Path]
) -> None:
    """Installed without bytecode, python -m azexec may cache azexec/__init__.py (compiled before it runs), only."""
    home, env = _home(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, timeout=120)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True, env=env, timeout=INSTALL_TIMEOUT)
    token = private_file(make_token())
    before = set(_files(home))
    args = ["-m", "azexec", "--token-file", str(token), "--", "printenv", "AZURE_CLI_TENANT_ID"]
    result = subprocess.run(
        [str(home / "venv" / "bin" / "python"), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, TENANT), explain(result)
    written = {os.path.relpath(path, home / "venv") for path in set(_files(home)) - before}
    assert all(Path(path).name.startswith("__init__.") and "/azexec/__pycache__/" in path for path in written), written
