"""azexec as a pre-commit hook, run by the real pre-commit against this repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TENANT, base_env, make_token

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A commit of this working tree (tracked and new files), so the hook under test is what is on disk."""
    repo = tmp_path_factory.mktemp("azexec-hook-repo")
    files = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "azexec under test")
    return repo, git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hook environment for the module: pre-commit builds it once, with pip."""
    return tmp_path_factory.mktemp("pre-commit-home")


def project(tmp_path: Path, hook_repo: tuple[Path, str], args: list[str]) -> Path:
    """A throwaway project whose .pre-commit-config.yaml uses the azexec hook at the commit under test."""
    repo, rev = hook_repo
    work = tmp_path / "project"
    work.mkdir()
    (work / "main.bicep").write_text("param location string\n")
    quoted = ", ".join(f"'{a}'" for a in args)
    (work / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {repo}\n  rev: {rev}\n  hooks:\n  - id: azexec\n    args: [{quoted}]\n"
    )
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "project")
    return work


def pre_commit(work: Path, home: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or "pre-commit"
    return subprocess.run(
        [executable, "run", "--all-files", "--verbose"],
        cwd=work,
        env=base_env(PRE_COMMIT_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


CHECK = (
    'test "$AZURE_CLI_TENANT_ID" = {tenant} && test -n "$AZURE_CLI_ACCESS_TOKEN" && echo "variables reached COMMAND"'
)


def test_hook_passes_the_variables_to_command(
    tmp_path: Path, hook_repo: tuple[Path, str], pre_commit_home: Path
) -> None:
    """With a good token, the hook runs COMMAND with the variables set, and passes."""
    token_file = tmp_path / "token"
    token_file.write_text(make_token())
    token_file.chmod(0o600)
    work = project(
        tmp_path, hook_repo, ["--token-cmd", f"cat {token_file}", "--", "sh", "-c", CHECK.format(tenant=TENANT)]
    )
    result = pre_commit(work, pre_commit_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "variables reached COMMAND" in result.stdout
    assert "Passed" in result.stdout


def test_hook_fails_on_an_expired_token_with_azexecs_message(
    tmp_path: Path, hook_repo: tuple[Path, str], pre_commit_home: Path
) -> None:
    """With an expired token, the hook fails before COMMAND runs, and the output says why."""
    token_file = tmp_path / "token"
    token_file.write_text(make_token(lifetime=-600))
    token_file.chmod(0o600)
    work = project(tmp_path, hook_repo, ["--token-file", str(token_file), "--", "sh", "-c", "echo COMMAND ran"])
    result = pre_commit(work, pre_commit_home)
    assert result.returncode == 1
    assert "Failed" in result.stdout
    assert "- exit code: 125" in result.stdout
    assert "azexec: the access token expired 10 minutes ago" in result.stdout
    assert "COMMAND ran" not in result.stdout
