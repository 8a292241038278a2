"""The README's promises: its quick start works and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import AZEXEC, base_env

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def commands(heading: str) -> list[str]:
    """Return the indented commands of the README's section HEADING."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^    ((?:python3|scripts/).+)$", section, flags=re.MULTILINE)


def test_the_quick_start_is_one_command_and_the_tests_another() -> None:
    """A newcomer's first screens: one command installs and runs the demo; the tests have their own section."""
    assert len(commands("Quick start")) == 1
    assert len(commands("Running the tests")) == 1
    assert "install-test-tools" not in README.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    assert README.index("## Running the tests") < README.index("## Install")


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run contains the README's test command verbatim, as its own line."""
    (test_command,) = commands("Running the tests")
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_quick_start_main_job_runs_on_the_demo_token() -> None:
    """The quick start's azexec invocation hands the shipped .env.example's token to the example client."""
    (install_and_run,) = commands("Quick start")
    invocation = install_and_run.rsplit(" && ", 1)[1]
    assert invocation.startswith(".venv/bin/azexec ")
    args = invocation.split()[1:]
    args = [sys.executable if arg == ".venv/bin/python" else arg for arg in args]
    result = subprocess.run([AZEXEC, *args], cwd=ROOT, env=base_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "got a token for https://management.azure.com/ (561 characters, not shown)\n"


def test_the_example_is_as_long_as_the_readme_says() -> None:
    """ "eleven lines of standard-library Python": examples/whoami.py, counted."""
    lines = (ROOT / "examples" / "whoami.py").read_text().splitlines()
    assert len(lines) == 11
    assert "eleven lines of standard-library" in README.replace("\n", " ")


def test_readme_says_released_az_ignores_the_variables_where_it_first_names_them() -> None:
    """Where AZURE_CLI_ACCESS_TOKEN is first named, the README says the mode is a draft PR that released az ignores."""
    first = next(p for p in README.split("\n\n") if "AZURE_CLI_ACCESS_TOKEN" in p)
    assert "#31575" in first
    assert "draft" in first
    assert "2.91.0" in first
    assert "--az-login" in first


def _invocations(text: str) -> list[str]:
    """Every azexec command line in TEXT: indented blocks and `code` spans, joined across line breaks."""
    spans = re.findall(r"`(azexec [^`]+)`", text) + re.findall(r"^ {4,}(?:.*\| )?(azexec .+)$", text, flags=re.M)
    return [" ".join(span.split()) for span in spans if " -- " in span]


def _sources(line: str) -> tuple[str, ...]:
    """Parse an example's options as azexec would; return the token sources (or env files) it names."""
    import shlex

    from azexec.cli import cli

    words = shlex.split(re.sub(r"<\([^)]*\)", "/dev/fd/63", line.split("#")[0]))[1:]
    params = cli.make_context("azexec", words, resilient_parsing=True).params
    names = ("token_cmd", "token_file", "token_env", "token_stdin", "env_files")
    return tuple(name for name in names if params.get(name))


def test_every_example_in_the_readme_and_help_names_a_token_source() -> None:
    """An example copied as written runs: each names a source (the container example once had none: exit 2)."""
    from click.testing import CliRunner

    from azexec.cli import cli

    # From --help as printed: the docstring's own indentation differs between Pythons (3.13 strips it).
    examples = _invocations(README) + _invocations(CliRunner().invoke(cli, ["--help"]).output)
    assert len(examples) > 10  # the examples were found
    assert [line for line in examples if not _sources(line)] == []
    assert _sources("azexec --identity-server --listen docker -- docker run IMAGE") == ()  # the check can fail
