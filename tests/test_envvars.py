"""Every option has a default in an AZEXEC_* variable (click's auto_envvar_prefix)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import SUBSCRIPTION, TENANT, base_env, explain, make_token, run

from azexec.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def test_the_man_page_names_the_variable_of_every_option() -> None:
    """docs/azexec.1 lists each option the command has with its AZEXEC_* variable; --help states the rule once."""
    page = (ROOT / "docs" / "azexec.1").read_text().replace("\\-", "-")
    # --help, --version and --man are azexec's own business: no variable may set them.
    options = [p for p in cli.params if isinstance(p, click.Option) and p.allow_from_autoenv]
    assert options
    for param in options:
        variable = param.envvar if isinstance(param.envvar, str) else f"AZEXEC_{(param.name or '').upper()}"
        assert f"{param.opts[-1]}" in page
        assert f"Environment: \\fB{variable}\\fR" in page, param.name
    help_text = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    assert "Each option but -h, --man and --version has a variable (AZEXEC_TOKEN_CMD for --token-cmd" in help_text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AZEXEC_TOKEN_FILE", "/nonexistent/azexec-token", "AZEXEC_TOKEN_FILE /nonexistent/azexec-token: no such file"),
        ("AZEXEC_TOKEN_CMD", "sh -c 'exit 3'", "AZEXEC_TOKEN_CMD failed: sh exited with status 3"),
        ("AZEXEC_TOKEN_CMD", "azexec-no-such-command", "AZEXEC_TOKEN_CMD: azexec-no-such-command: command not found"),
        ("AZEXEC_TOKEN_ENV", "AZEXEC_TEST_UNSET", "AZEXEC_TOKEN_ENV AZEXEC_TEST_UNSET: the variable is not set"),
        ("AZEXEC_ENV_FILE", "/nonexistent/azexec.env", "AZEXEC_ENV_FILE /nonexistent/azexec.env: no such file"),
    ],
    ids=["file", "command failing", "command missing", "variable", "env file"],
)
def test_a_source_set_by_its_variable_is_named_by_it(variable: str, value: str, message: str) -> None:
    """Messages name a source as the user gave it: through AZEXEC_*, not as the option they did not type."""
    result = run("--", "true", env=base_env(**{variable: value}))
    assert result.returncode == 125, explain(result)
    assert result.stderr.startswith(f"azexec: {message}"), explain(result)


def test_an_empty_token_file_from_its_variable_is_named_by_it(private_file: Callable[..., Path]) -> None:
    """A token check's message names the source the same way: the variable."""
    path = private_file("")
    result = run("--", "true", env=base_env(AZEXEC_TOKEN_FILE=str(path)))
    assert result.returncode == 125, explain(result)
    assert f"AZEXEC_TOKEN_FILE {path} is empty" in result.stderr


def test_sources_and_ids_from_the_environment(private_file: Callable[..., Path]) -> None:
    """AZEXEC_TOKEN_CMD, AZEXEC_ENV_FILE (several, separated like PATH) and AZEXEC_SUBSCRIPTION work as options."""
    path = private_file(make_token())
    ids_a = private_file(f"AZURE_CLI_TENANT_ID={TENANT.upper()}\n", name="a.env")
    ids_b = private_file(f"AZURE_CLI_TENANT_ID={TENANT}\n", name="b.env")
    env = base_env(
        AZEXEC_TOKEN_CMD=f"cat {path}", AZEXEC_ENV_FILE=f"{ids_a}{os.pathsep}{ids_b}", AZEXEC_SUBSCRIPTION=SUBSCRIPTION
    )
    result = run("--", "printenv", "AZURE_CLI_SUBSCRIPTION_ID", "AZURE_CLI_TENANT_ID", env=env)
    assert result.stdout.split() == [SUBSCRIPTION, TENANT], explain(result)


def test_flags_and_checks_from_the_environment(private_file: Callable[..., Path]) -> None:
    """AZEXEC_DRY_RUN, AZEXEC_JSON, AZEXEC_QUIET and AZEXEC_MIN_VALIDITY behave like their options."""
    path = private_file(make_token(lifetime=3000))
    env = base_env(AZEXEC_TOKEN_FILE=str(path), AZEXEC_DRY_RUN="1", AZEXEC_JSON="true", AZEXEC_QUIET="1")
    result = run("--", "az", "group", "list", env=env)
    assert json.loads(result.stdout)["command"] == ["az", "group", "list"], explain(result)
    assert result.stderr == ""
    strict = run("--", "true", env=base_env(AZEXEC_TOKEN_FILE=str(path), AZEXEC_MIN_VALIDITY="1h"))
    assert strict.returncode == 125
    assert "less than --min-validity" in strict.stderr


def test_command_line_beats_the_environment(private_file: Callable[..., Path]) -> None:
    """An option given on the command line wins over its variable."""
    env = base_env(AZEXEC_TOKEN_ENV="T", T=make_token(), AZEXEC_SUBSCRIPTION="00000000-0000-4000-8000-00000000beef")
    result = run("--subscription", SUBSCRIPTION, "--", "printenv", "AZURE_CLI_SUBSCRIPTION_ID", env=env)
    assert result.stdout == f"{SUBSCRIPTION}\n", explain(result)


def test_an_option_beats_a_source_set_by_a_variable(private_file: Callable[..., Path]) -> None:
    """AZEXEC_TOKEN_CMD in the environment and --token-file typed: the option wins, as options win over variables."""
    typed = make_token(upn="typed@contoso.example")
    path = private_file(typed)
    env = base_env(AZEXEC_TOKEN_CMD="sh -c 'exit 9'")
    result = run("--token-file", str(path), "--", "printenv", "AZURE_CLI_ACCESS_TOKEN", env=env)
    assert result.stdout == typed + "\n", explain(result)


def test_an_option_beats_the_token_of_an_env_file_set_by_a_variable(private_file: Callable[..., Path]) -> None:
    """AZEXEC_ENV_FILE holding a token and --token-file typed: the typed token, the file's IDs still apply."""
    typed = make_token()
    path = private_file(typed)
    env_file = private_file(
        f"AZURE_CLI_ACCESS_TOKEN={make_token()}\nAZURE_CLI_SUBSCRIPTION_ID={SUBSCRIPTION}\n", name="a.env"
    )
    env = base_env(AZEXEC_ENV_FILE=str(env_file))
    script = 'printf "%s\\n" "$AZURE_CLI_ACCESS_TOKEN" "$AZURE_CLI_SUBSCRIPTION_ID"'
    result = run("--token-file", str(path), "--", "sh", "-c", script, env=env)
    assert result.stdout.split() == [typed, SUBSCRIPTION], explain(result)


def test_two_variables_naming_two_sources_conflict(private_file: Callable[..., Path]) -> None:
    """AZEXEC_TOKEN_FILE plus AZEXEC_TOKEN_CMD, nothing typed: a usage error naming both."""
    path = private_file(make_token())
    result = run("--", "true", env=base_env(AZEXEC_TOKEN_FILE=str(path), AZEXEC_TOKEN_CMD=f"cat {path}"))
    assert result.returncode == 2
    assert "both AZEXEC_TOKEN_FILE and AZEXEC_TOKEN_CMD" in result.stderr


def test_configuration_variables_never_carry_the_token(private_file: Callable[..., Path]) -> None:
    """With every source configured through AZEXEC_*, COMMAND sees no AZEXEC_* value holding the token."""
    tok = make_token()
    path = private_file(tok)
    env = base_env(AZEXEC_TOKEN_CMD=f"cat {path}", AZEXEC_QUIET="1", AZEXEC_NO_EXEC="1")
    result = run("--", "sh", "-c", "env | grep ^AZEXEC_ || true", env=env)
    assert result.returncode == 0, explain(result)
    assert "AZEXEC_TOKEN_CMD" in result.stdout
    assert tok not in result.stdout
