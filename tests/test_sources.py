"""Reading credentials from stdin, files, variables, .env files and commands."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SUBSCRIPTION, TENANT, all_gone

from azexec import sources
from azexec.errors import TokenSourceError, UsageError

AZ_JSON = {
    "accessToken": "eyJ.tok.en",
    "expiresOn": "2026-11-25 13:00:00.000000",
    "expires_on": 1795000000,
    "subscription": SUBSCRIPTION,
    "tenant": TENANT,
    "tokenType": "Bearer",
}


def test_parse_bare_token_trims_whitespace() -> None:
    """A bare token loses surrounding whitespace and trailing newlines."""
    credential = sources.parse("  eyJ.tok.en \r\n\n", "src")
    assert credential.token == sources.Sourced("eyJ.tok.en", "src")
    assert credential.subscription is None
    assert credential.tenant is None


def test_parse_az_get_access_token_json() -> None:
    """What `az account get-access-token -o json` prints supplies token, subscription and tenant."""
    credential = sources.parse(json.dumps(AZ_JSON, indent=2, sort_keys=True), "src")
    assert credential.token == sources.Sourced("eyJ.tok.en", "src (accessToken)")
    assert credential.subscription == sources.Sourced(SUBSCRIPTION, "src (subscription)")
    assert credential.tenant == sources.Sourced(TENANT, "src (tenant)")


def test_parse_oauth2_token_response() -> None:
    """An OAuth2 token response supplies the token alone."""
    text = json.dumps({"access_token": "eyJ.tok.en", "expires_in": 3599, "token_type": "Bearer"})
    credential = sources.parse(text, "src")
    assert credential.token is not None
    assert credential.token.value == "eyJ.tok.en"
    assert credential.subscription is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        (" \n\t", "is empty"),
        ('{"token": "eyJ.secret.value"}', "JSON without an access token"),
        ('{"accessToken": 42}', '"accessToken" is not a string'),
        ('{"accessToken": ""}', '"accessToken" is empty'),
        ('{"accessToken": "eyJ.a.b", "subscription": ["x"]}', '"subscription" is not a string'),
        ('{"accessToken": "eyJ.secret.value"', "not valid JSON (line 1, column 35)"),
        ('["eyJ.secret.value"]', "JSON that is not an object"),
    ],
)
def test_parse_refuses_unusable_text_without_echoing_it(text: str, message: str) -> None:
    """Each failure names the keys looked for, and never the content."""
    with pytest.raises(TokenSourceError, match="src") as info:
        sources.parse(text, "src")
    assert message in str(info.value)
    assert "secret" not in str(info.value)


def test_from_file_reads_a_private_file_silently(private_file: Callable[..., Path]) -> None:
    """A mode-600 file gives the token and no warning."""
    path = private_file("eyJ.tok.en\n")
    credential = sources.from_file(str(path))
    assert credential.token == sources.Sourced("eyJ.tok.en", f"--token-file {path}")
    assert credential.warnings == ()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_from_file_warns_when_others_can_read(private_file: Callable[..., Path], mode: int) -> None:
    """Group- or world-readable regular files are warned about, like ssh keys."""
    path = private_file("eyJ.tok.en")
    path.chmod(mode)
    (warning,) = sources.from_file(str(path)).warnings
    assert f"mode {mode:04o}" in warning
    assert f"chmod 600 {path}" in warning


def test_from_file_warns_through_a_symlink(private_file: Callable[..., Path], tmp_path: Path) -> None:
    """A link to a world-readable file is judged by the file it points to."""
    target = private_file("eyJ.tok.en")
    target.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert len(sources.from_file(str(link)).warnings) == 1


def test_from_file_reads_a_fifo_without_warning(tmp_path: Path) -> None:
    """A named pipe (like process substitution) works and is not warned about."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o666)

    def writer() -> None:
        with open(fifo, "w") as f:
            f.write("eyJ.tok.en\n")

    thread = threading.Thread(target=writer)
    thread.start()
    credential = sources.from_file(str(fifo))
    thread.join()
    assert credential.token is not None
    assert credential.token.value == "eyJ.tok.en"
    assert credential.warnings == ()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: d / "missing" / "x", "no such file"),
    ],
)
def test_from_file_errors(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    """Missing paths and directories are clear errors."""
    with pytest.raises(TokenSourceError, match=message):
        sources.from_file(str(make(tmp_path)))


def test_from_file_refuses_more_than_a_mebibyte(private_file: Callable[..., Path]) -> None:
    """A source is bounded: more than 1 MiB is refused before it is held."""
    path = private_file("a" * (sources.MAX_SOURCE_BYTES + 1))
    with pytest.raises(TokenSourceError, match="more than 1 MiB"):
        sources.from_file(str(path))


def test_from_file_strips_a_byte_order_mark_and_refuses_binary(private_file: Callable[..., Path]) -> None:
    """A UTF-8 BOM from a Windows editor is dropped; bytes that are not UTF-8 are refused."""
    path = private_file("")
    path.write_bytes(b"\xef\xbb\xbfeyJ.tok.en\r\n")
    token = sources.from_file(str(path)).token
    assert token is not None
    assert token.value == "eyJ.tok.en"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(TokenSourceError, match="is not UTF-8 text"):
        sources.from_file(str(path))


def test_from_env() -> None:
    """--token-env reads the named variable; unset and empty are errors."""
    credential = sources.from_env("CI_TOKEN", {"CI_TOKEN": "eyJ.tok.en\n"})
    assert credential.token == sources.Sourced("eyJ.tok.en", "--token-env CI_TOKEN")
    with pytest.raises(TokenSourceError, match="--token-env CI_TOKEN: the variable is not set"):
        sources.from_env("CI_TOKEN", {})
    with pytest.raises(TokenSourceError, match="--token-env CI_TOKEN is empty"):
        sources.from_env("CI_TOKEN", {"CI_TOKEN": ""})


def test_from_env_file_takes_only_the_three_variables(private_file: Callable[..., Path]) -> None:
    """python-dotenv syntax (export, quotes, comments) works; other keys are ignored."""
    path = private_file(
        "# comment\n"
        "export AZURE_CLI_ACCESS_TOKEN='eyJ.tok.en'\n"
        f'AZURE_CLI_SUBSCRIPTION_ID="{SUBSCRIPTION}"\n'
        f"AZURE_CLI_TENANT_ID={TENANT}  # inline comment\n"
        "OTHER=ignored\n",
        name="azure.env",
    )
    credential = sources.from_env_file(str(path))
    origin = f"--env-file {path}"
    assert credential.token == sources.Sourced("eyJ.tok.en", origin)
    assert credential.subscription == sources.Sourced(SUBSCRIPTION, origin)
    assert credential.tenant == sources.Sourced(TENANT, origin)
    assert "OTHER" not in os.environ


def test_from_env_file_warns_only_when_it_holds_the_token(private_file: Callable[..., Path]) -> None:
    """A committed, world-readable .env with only the IDs is fine; one with the token is warned about."""
    ids_only = private_file(f"AZURE_CLI_SUBSCRIPTION_ID={SUBSCRIPTION}\nAZURE_CLI_ACCESS_TOKEN=\n", name="ids.env")
    ids_only.chmod(0o644)
    credential = sources.from_env_file(str(ids_only))
    assert credential.token is None
    assert credential.warnings == ()
    secret = private_file("AZURE_CLI_ACCESS_TOKEN=eyJ.tok.en\n", name="secret.env")
    secret.chmod(0o644)
    assert len(sources.from_env_file(str(secret)).warnings) == 1


def test_from_env_file_missing_is_an_error(tmp_path: Path) -> None:
    """python-dotenv would read a missing file as empty; azexec says so instead."""
    with pytest.raises(TokenSourceError, match=r"--env-file .*: no such file"):
        sources.from_env_file(str(tmp_path / "nope.env"))


def test_from_command_reads_stdout(private_file: Callable[..., Path]) -> None:
    """The command's stdout (possibly JSON) is the source."""
    path = private_file(json.dumps(AZ_JSON))
    credential = sources.from_command(f"cat {path}", timeout=10)
    assert credential.token == sources.Sourced("eyJ.tok.en", "--token-cmd (accessToken)")
    assert credential.subscription is not None


def test_from_command_splits_like_a_shell_without_one(tmp_path: Path) -> None:
    """Quotes group words; $VARS and globs are not expanded, because there is no shell."""
    path = tmp_path / "a file"
    path.write_text("eyJ.tok.en")
    credential = sources.from_command(f"cat '{path}'", timeout=10)
    assert credential.token is not None
    assert credential.token.value == "eyJ.tok.en"
    literal = sources.from_command("printf %s $HOME*", timeout=10).token
    assert literal is not None
    assert literal.value == "$HOME*"


@pytest.mark.parametrize(
    ("command", "error", "message"),
    [
        ("no-such-command-azexec", TokenSourceError, "no-such-command-azexec: command not found"),
        ("sh -c 'echo eyJ.secret.part; exit 3'", TokenSourceError, "sh exited with status 3"),
        ("sh -c 'kill -TERM $$'", TokenSourceError, "sh was killed by SIGTERM"),
        ("cat /dev/zero", TokenSourceError, "printed more than 1 MiB"),
        ("'unterminated", UsageError, "cannot be split"),
        ("", UsageError, "--token-cmd is empty"),
    ],
)
def test_from_command_failures(command: str, error: type[Exception], message: str) -> None:
    """Not found, failure, death by signal, endless output and bad quoting are errors that echo no output."""
    with pytest.raises(error, match=message) as info:
        sources.from_command(command, timeout=20)
    assert "secret" not in str(info.value)


def test_from_command_timeout_kills_everything_it_started(tmp_path: Path) -> None:
    """On timeout the command and its background children die, and azexec does not wait for them."""
    pidfile = tmp_path / "pids"
    command = f"sh -c 'sleep 300 & echo $! > {pidfile}; echo $$ >> {pidfile}; wait'"
    started = time.monotonic()
    with pytest.raises(TokenSourceError, match=r"did not finish within 1s and was killed"):
        sources.from_command(command, timeout=1)
    assert time.monotonic() - started < 10
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    assert all_gone(pids)


def test_from_command_that_exits_but_leaves_stdout_open_times_out(tmp_path: Path) -> None:
    """A daemon holding the pipe open cannot hang azexec past the timeout."""
    command = "sh -c 'echo eyJ.tok.en; sleep 300 &'"
    with pytest.raises(TokenSourceError, match="did not finish within 1s"):
        sources.from_command(command, timeout=1)
