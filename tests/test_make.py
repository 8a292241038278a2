"""azexec in Makefile recipes, run by the real GNU make."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import AZEXEC, TENANT, base_env, make_token, run

pytestmark = pytest.mark.slow

JOBS = 48

MAKEFILE = """\
AZ := $(AZEXEC) --token-file $(TOKEN) --
JOBS := $(addprefix job-,$(shell seq 1 {jobs}))

all: $(JOBS)

$(JOBS):
\t@$(AZ) sh -c 'test -n "$$AZURE_CLI_ACCESS_TOKEN" && test "$$AZURE_CLI_TENANT_ID" = {tenant} && echo "$@ ok"'

# The whole run under one azexec: recipes use the variables directly.
deploy: $(addprefix step-,$(shell seq 1 {jobs}))

step-%:
\t@test -n "$$AZURE_CLI_ACCESS_TOKEN" && echo "$@ ok"

.PHONY: all deploy $(JOBS)
"""


def make(directory: Path, *args: str, token: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-j8", f"AZEXEC={AZEXEC}", f"TOKEN={token}", *args],
        cwd=directory,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def setup(tmp_path: Path, lifetime: float = 3600) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    (work / "Makefile").write_text(MAKEFILE.format(jobs=JOBS, tenant=TENANT))
    token = tmp_path / "token"
    token.write_text(make_token(lifetime=lifetime))
    token.chmod(0o600)
    return work, token


def test_parallel_recipes_each_run_azexec(tmp_path: Path) -> None:
    """make -j8 over 48 recipes, each through azexec: all succeed, nothing shared, no stray files."""
    work, token = setup(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = make(work, token=token)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split("\n")[:-1]) == sorted(f"job-{n} ok" for n in range(1, JOBS + 1))
    assert result.stderr == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_expired_token_stops_make_with_error_125(tmp_path: Path) -> None:
    """An expired token fails the recipe with azexec's status, and make says so."""
    work, token = setup(tmp_path, lifetime=-60)
    result = make(work, token=token)
    assert result.returncode == 2
    assert "Error 125" in result.stderr
    assert "azexec: the access token expired" in result.stderr
    assert " ok" not in result.stdout


def test_wrapping_a_whole_make_run_gets_the_token_once(tmp_path: Path) -> None:
    """azexec … -- make deploy: a slow token command runs once for every recipe."""
    work, token = setup(tmp_path)
    count = tmp_path / "count"
    token_cmd = f"sh -c 'echo run >> {count}; cat {token}'"
    result = run("--token-cmd", token_cmd, "--", "make", "-j8", "deploy", cwd=work, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == JOBS
    assert count.read_text() == "run\n"
