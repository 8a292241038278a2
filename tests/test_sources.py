"""Reading credentials from stdin, files, variables, .env files and commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    ARM,
    AZEXEC,
    SUBSCRIPTION,
    TENANT,
    all_gone,
    base_env,
    held,
    make_token,
    nearly_expired,
    request,
    wait_until,
)

from azexec import sources
from azexec.bounded import MAX_SOURCE_BYTES
from azexec.errors import TokenSourceError, UsageError
from azexec.redact import Secret

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
    assert credential.token == Secret("eyJ.tok.en", "src")
    assert credential.subscription is None
    assert credential.tenant is None


def test_parse_az_get_access_token_json() -> None:
    """What `az account get-access-token -o json` prints supplies token, subscription and tenant."""
    credential = sources.parse(json.dumps(AZ_JSON, indent=2, sort_keys=True), "src")
    assert credential.token == Secret("eyJ.tok.en", "src (accessToken)")
    assert credential.subscription == sources.Sourced(SUBSCRIPTION, "src (subscription)")
    assert credential.tenant == sources.Sourced(TENANT, "src (tenant)")


def test_parse_oauth2_token_response() -> None:
    """An OAuth2 token response supplies the token alone."""
    text = json.dumps({"access_token": "eyJ.tok.en", "expires_in": 3599, "token_type": "Bearer"})
    credential = sources.parse(text, "src")
    assert credential.token is not None
    assert credential.token.reveal() == "eyJ.tok.en"
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


EXPIRED_SIGN_IN = {
    "error": "invalid_grant",
    "error_description": "AADSTS70043: The refresh token has expired due to sign-in frequency checks.\r\nTrace ID: 1",
}


def test_an_oauth_error_is_quoted_in_the_one_line() -> None:
    """A token endpoint's error answer: its error and the first line of its description, and the way out."""
    with pytest.raises(TokenSourceError) as info:
        sources.parse(json.dumps(EXPIRED_SIGN_IN), "--token-cmd")
    assert str(info.value) == (
        "--token-cmd holds an OAuth error instead of a token: invalid_grant: AADSTS70043: The refresh token has "
        "expired due to sign-in frequency checks.; fix what it says (an expired sign-in: sign in again), "
        "then run azexec again"
    )


@pytest.mark.parametrize(
    ("description", "shown", "hidden"),
    [
        ("leaked eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl here", "<redacted", "eyJhbGci"),
        ("bell \x07 and escape \x1b[31m", "\\x07", "\x1b"),
        ("word " * 200, "word …;", "word " * 41),
    ],
    ids=["a token in it", "control characters", "1000 characters"],
)
def test_an_oauth_error_is_bounded_escaped_and_redacted(description: str, shown: str, hidden: str) -> None:
    with pytest.raises(TokenSourceError) as info:
        sources.parse(json.dumps({"error": "invalid_grant", "error_description": description}), "src")
    assert shown in str(info.value)
    assert hidden not in str(info.value)


def test_a_refresh_quotes_the_oauth_error_too(tmp_path: Path) -> None:
    """The identity server's refresh meets the same answer: its warning quotes it."""
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps(EXPIRED_SIGN_IN))
    provider = held(nearly_expired(), source=sources.Command(f"cat {answer}", timeout=30, label="--token-cmd"))
    warnings: list[str] = []
    provider.warn = warnings.append
    provider.get(ARM)
    (warning,) = warnings
    assert warning.startswith(
        "refreshing the token failed: --token-cmd holds an OAuth error instead of a token: invalid_grant: AADSTS70043"
    )


def test_from_file_reads_a_private_file_silently(private_file: Callable[..., Path]) -> None:
    """A mode-600 file gives the token and no warning."""
    path = private_file("eyJ.tok.en\n")
    credential = sources.File(str(path), label="--token-file").read()
    assert credential.token == Secret("eyJ.tok.en", f"--token-file {path}")
    assert credential.warnings == ()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_from_file_warns_when_others_can_read(private_file: Callable[..., Path], mode: int) -> None:
    """Group- or world-readable regular files are warned about, like ssh keys."""
    path = private_file("eyJ.tok.en")
    path.chmod(mode)
    (warning,) = sources.File(str(path), label="--token-file").read().warnings
    assert f"mode {mode:04o}" in warning
    assert f"chmod 600 {path}" in warning


def test_from_file_warns_through_a_symlink(private_file: Callable[..., Path], tmp_path: Path) -> None:
    """A link to a world-readable file is judged by the file it points to."""
    target = private_file("eyJ.tok.en")
    target.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert len(sources.File(str(link), label="--token-file").read().warnings) == 1


def test_from_file_reads_a_fifo_without_warning(tmp_path: Path) -> None:
    """A named pipe (like process substitution) works and is not warned about."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o666)

    def writer() -> None:
        with open(fifo, "w") as f:
            f.write("eyJ.tok.en\n")

    thread = threading.Thread(target=writer)
    thread.start()
    credential = sources.File(str(fifo), label="--token-file").read()
    thread.join()
    assert credential.token is not None
    assert credential.token.reveal() == "eyJ.tok.en"
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
        sources.File(str(make(tmp_path)), label="--token-file").read()


def test_from_file_refuses_more_than_a_mebibyte(private_file: Callable[..., Path]) -> None:
    """A source is bounded: more than 1 MiB is refused before it is held."""
    path = private_file("a" * (MAX_SOURCE_BYTES + 1))
    with pytest.raises(TokenSourceError, match="more than 1 MiB"):
        sources.File(str(path), label="--token-file").read()


def test_from_file_strips_a_byte_order_mark_and_refuses_binary(private_file: Callable[..., Path]) -> None:
    """A UTF-8 BOM from a Windows editor is dropped; bytes that are not UTF-8 are refused."""
    path = private_file("")
    path.write_bytes(b"\xef\xbb\xbfeyJ.tok.en\r\n")
    token = sources.File(str(path), label="--token-file").read().token
    assert token is not None
    assert token.reveal() == "eyJ.tok.en"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(TokenSourceError, match="is not UTF-8 text"):
        sources.File(str(path), label="--token-file").read()


def test_from_env() -> None:
    """--token-env reads the named variable; unset and empty are errors."""
    credential = sources.Variable("CI_TOKEN", {"CI_TOKEN": "eyJ.tok.en\n"}, label="--token-env").read()
    assert credential.token == Secret("eyJ.tok.en", "--token-env CI_TOKEN")
    with pytest.raises(TokenSourceError, match="--token-env CI_TOKEN: the variable is not set"):
        sources.Variable("CI_TOKEN", {}, label="--token-env").read()
    with pytest.raises(TokenSourceError, match="--token-env CI_TOKEN is empty"):
        sources.Variable("CI_TOKEN", {"CI_TOKEN": ""}, label="--token-env").read()


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
    credential = sources.EnvFile(str(path), label="--env-file").read()
    origin = f"--env-file {path}"
    assert credential.token == Secret("eyJ.tok.en", origin)
    assert credential.subscription == sources.Sourced(SUBSCRIPTION, origin)
    assert credential.tenant == sources.Sourced(TENANT, origin)
    assert "OTHER" not in os.environ


def test_from_env_file_warns_only_when_it_holds_the_token(private_file: Callable[..., Path]) -> None:
    """A committed, world-readable .env with only the IDs is fine; one with the token is warned about."""
    ids_only = private_file(f"AZURE_CLI_SUBSCRIPTION_ID={SUBSCRIPTION}\nAZURE_CLI_ACCESS_TOKEN=\n", name="ids.env")
    ids_only.chmod(0o644)
    credential = sources.EnvFile(str(ids_only), label="--env-file").read()
    assert credential.token is None
    assert credential.warnings == ()
    secret = private_file("AZURE_CLI_ACCESS_TOKEN=eyJ.tok.en\n", name="secret.env")
    secret.chmod(0o644)
    assert len(sources.EnvFile(str(secret), label="--env-file").read().warnings) == 1


def test_from_env_file_missing_is_an_error(tmp_path: Path) -> None:
    """python-dotenv would read a missing file as empty; azexec says so instead."""
    with pytest.raises(TokenSourceError, match=r"--env-file .*: no such file"):
        sources.EnvFile(str(tmp_path / "nope.env"), label="--env-file").read()


def test_from_command_reads_stdout(private_file: Callable[..., Path]) -> None:
    """The command's stdout (possibly JSON) is the source."""
    path = private_file(json.dumps(AZ_JSON))
    credential = sources.Command(f"cat {path}", timeout=10, label="--token-cmd").read()
    assert credential.token == Secret("eyJ.tok.en", "--token-cmd (accessToken)")
    assert credential.subscription is not None


def test_from_command_splits_like_a_shell_without_one(tmp_path: Path) -> None:
    """Quotes group words; $VARS and globs are not expanded, because there is no shell."""
    path = tmp_path / "a file"
    path.write_text("eyJ.tok.en")
    credential = sources.Command(f"cat '{path}'", timeout=10, label="--token-cmd").read()
    assert credential.token is not None
    assert credential.token.reveal() == "eyJ.tok.en"
    literal = sources.Command("printf %s $HOME*", timeout=10, label="--token-cmd").read().token
    assert literal is not None
    assert literal.reveal() == "$HOME*"


@pytest.mark.parametrize(
    ("command", "error", "message"),
    [
        ("no-such-command-azexec", TokenSourceError, "no-such-command-azexec: command not found"),
        ("sh -c 'echo eyJ.secret.part; exit 3'", TokenSourceError, "sh exited with status 3"),
        ("sh -c 'kill -TERM $$'", TokenSourceError, "sh was killed by SIGTERM"),
        ("cat /dev/zero", TokenSourceError, "output holds more than 1 MiB"),
        ("'unterminated", UsageError, "cannot be split"),
        ("", UsageError, "--token-cmd is empty"),
    ],
)
def test_from_command_failures(command: str, error: type[Exception], message: str) -> None:
    """Not found, failure, death by signal, endless output and bad quoting are errors that echo no output."""
    with pytest.raises(error, match=message) as info:
        sources.Command(command, timeout=20, label="--token-cmd").read()
    assert "secret" not in str(info.value)


@pytest.mark.slow
def test_from_command_timeout_kills_everything_it_started(tmp_path: Path) -> None:
    """On timeout the command and its background children die, and azexec does not wait for them."""
    pidfile = tmp_path / "pids"
    command = f"sh -c 'sleep 300 & echo $! > {pidfile}; echo $$ >> {pidfile}; wait'"
    started = time.monotonic()
    with pytest.raises(TokenSourceError, match=r"did not finish within 1s and was killed"):
        sources.Command(command, timeout=1, label="--token-cmd").read()
    assert time.monotonic() - started < 10
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    assert all_gone(pids)


@pytest.mark.slow
def test_from_command_that_exits_but_leaves_stdout_open_is_read_at_its_exit() -> None:
    """A daemon holding the pipe open neither hangs azexec nor fails it: what was printed by the exit counts."""
    command = "sh -c 'echo eyJ.tok.en; sleep 300 &'"
    started = time.monotonic()
    credential = sources.Command(command, timeout=20, label="--token-cmd").read()
    assert credential.token == Secret("eyJ.tok.en", "--token-cmd")
    assert time.monotonic() - started < 10


def test_env_file_values_are_literal(private_file: Callable[..., Path]) -> None:
    """${VAR} is not expanded: it names no variable of azexec's environment, and a token reference is an error."""
    path = private_file(f"AZURE_CLI_ACCESS_TOKEN=${{CI_SECRET}}\nAZURE_CLI_TENANT_ID={TENANT}\n", name="a.env")
    with pytest.raises(TokenSourceError, match=r"refers to \$\{CI_SECRET\}.*use --token-env CI_SECRET"):
        sources.EnvFile(str(path), label="--env-file").read()


def test_env_file_does_not_reimport_a_stale_value(
    private_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AZURE_CLI_SUBSCRIPTION_ID=${AZURE_CLI_SUBSCRIPTION_ID} cannot bring back the value azexec drops."""
    monkeypatch.setenv("AZURE_CLI_SUBSCRIPTION_ID", SUBSCRIPTION)
    path = private_file("AZURE_CLI_SUBSCRIPTION_ID=${AZURE_CLI_SUBSCRIPTION_ID}\n", name="a.env")
    with pytest.raises(TokenSourceError, match="taken literally"):
        sources.EnvFile(str(path), label="--env-file").read()


def test_env_file_with_an_empty_token_says_so(private_file: Callable[..., Path]) -> None:
    """An empty AZURE_CLI_ACCESS_TOKEN= is reported as empty, like the other sources."""
    from azexec import plan

    path = private_file(f"AZURE_CLI_ACCESS_TOKEN=\nAZURE_CLI_TENANT_ID={TENANT}\n", name="a.env")
    with pytest.raises(TokenSourceError, match="AZURE_CLI_ACCESS_TOKEN is empty"):
        plan.prepare(request(env_files=(str(path),)), {})


def test_env_file_parse_errors_are_azexec_warnings(private_file: Callable[..., Path]) -> None:
    """A line python-dotenv cannot parse becomes one azexec warning naming the line, not a library log line."""
    path = private_file(f'AZURE_CLI_TENANT_ID={TENANT}\nBROKEN="unterminated\n', name="a.env")
    credential = sources.EnvFile(str(path), label="--env-file").read()
    assert credential.warnings == (f"--env-file {path}: line 2 is not KEY=VALUE and is ignored",)
    assert credential.tenant == sources.Sourced(TENANT, f"--env-file {path}")


def _parse_seconds(path: Path) -> float:
    started = time.process_time()
    sources.EnvFile(str(path), label="--env-file").read()
    return time.process_time() - started


@pytest.mark.slow
def test_env_file_parsing_is_linear_in_its_size(tmp_path: Path) -> None:
    """A 1 MiB env file (about 100 000 keys, interpolation syntax throughout) parses in time linear in its size.

    Measured as a ratio to an eighth of the file, in this process: linear is
    about 8x, quadratic (python-dotenv's interpolation) 64x.
    """
    line = "KEY_{:06d}=${{KEY_{:06d}}}x\n"
    big, small = tmp_path / "big.env", tmp_path / "small.env"
    lines = [line.format(i, i - 1) for i in range(100_000)]
    big.write_text("".join(lines)[: MAX_SOURCE_BYTES - 1])
    small.write_text("".join(lines[: len(lines) // 8]))
    big.chmod(0o600)
    small.chmod(0o600)
    _parse_seconds(small)  # warm up
    small_seconds = min(_parse_seconds(small) for _ in range(3))
    big_seconds = min(_parse_seconds(big) for _ in range(2))
    assert big_seconds / small_seconds < 24, (big_seconds, small_seconds)


def test_json_whose_two_token_keys_disagree_is_an_error() -> None:
    """accessToken and access_token naming different tokens: which one was meant is unclear."""
    with pytest.raises(TokenSourceError, match='"accessToken" and "access_token" differ'):
        sources.parse(json.dumps({"accessToken": "eyJ.a.b", "access_token": "eyJ.c.d"}), "src")


def test_json_nested_too_deeply_is_an_error() -> None:
    """JSON nested 100 000 deep is refused, not a RecursionError."""
    with pytest.raises(TokenSourceError, match="nested too deeply"):
        sources.parse("[" * 100_000 + "]" * 100_000, "src")


# ---------------------------------------------------------------- azexec stopped while the command runs

STOPPING_COMMAND = "sh -c 'sleep 300 & echo $! > {pids}; echo $$ >> {pids}; wait'"


def _start_with_token_cmd(pids: Path, *wrapper: str) -> subprocess.Popen[bytes]:
    from helpers import AZEXEC, base_env

    cmd = STOPPING_COMMAND.format(pids=pids)
    proc = subprocess.Popen([*wrapper, AZEXEC, "--token-cmd", cmd, "--", "true"], env=base_env())
    wait_until(lambda: len(pids.read_text().split() if pids.exists() else []) >= 2, what="the token command's start")
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGINT", "SIGUSR1"])
def test_a_signal_to_azexec_ends_the_token_commands_group_first(tmp_path: Path, name: str) -> None:
    """Whatever ends azexec while --token-cmd runs ends the command and its children, then azexec dies of it."""
    pids = tmp_path / "pids"
    proc = _start_with_token_cmd(pids)
    try:
        proc.send_signal(getattr(signal, name))
        assert proc.wait(timeout=20) == -getattr(signal, name)
    finally:
        proc.kill()
        proc.wait()
    assert all_gone([int(p) for p in pids.read_text().split()])


@pytest.mark.slow
def test_timeout_cancels_the_token_command_too(tmp_path: Path) -> None:
    """`timeout 2 azexec --token-cmd …` (a CI step's time limit) leaves nothing of the command running."""
    from helpers import AZEXEC, base_env

    pids = tmp_path / "pids"
    cmd = STOPPING_COMMAND.format(pids=pids)
    result = subprocess.run(
        ["timeout", "2", AZEXEC, "--token-cmd", cmd, "--", "true"], env=base_env(), capture_output=True, timeout=30
    )
    assert result.returncode == 124, result
    assert all_gone([int(p) for p in pids.read_text().split()])


def test_what_a_token_command_leaves_in_its_group_is_killed(tmp_path: Path, private_file: Callable[..., Path]) -> None:
    """A background process the command left behind (stdout elsewhere) does not outlive azexec."""
    path = private_file("eyJ.tok.en")
    pids = tmp_path / "pids"
    cmd = f"sh -c 'sleep 300 >/dev/null 2>&1 & echo $! > {pids}; cat {path}'"
    assert sources.Command(cmd, timeout=20, label="--token-cmd").read().token == Secret("eyJ.tok.en", "--token-cmd")
    assert all_gone([int(p) for p in pids.read_text().split()])


def test_a_job_left_holding_stdout_does_not_hold_azexec(private_file: Callable[..., Path], tmp_path: Path) -> None:
    """`sh -c '(sleep 300 &); cat t'`: read to the command's exit plus a short grace, and the job is killed."""
    path = private_file(make_token())
    pids = tmp_path / "pids"
    token_cmd = f"sh -c '(sleep 300 & echo $! > {pids}); cat {path}'"
    started = time.monotonic()
    result = subprocess.run(
        [AZEXEC, "--token-cmd-timeout", "20s", "--token-cmd", token_cmd, "--", "true"],
        env=base_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 15  # well before the 20 s timeout that would have been the only way out
    assert all_gone([int(pids.read_text())])


def test_a_refresh_command_leaving_a_job_holding_stdout_is_read_at_its_exit(
    private_file: Callable[..., Path], tmp_path: Path
) -> None:
    """The same for a token command run while COMMAND runs: its token is served, its job killed."""
    fresh = make_token()
    path = private_file(fresh)
    pids = tmp_path / "pids"
    command = sources.Command(f"sh -c '(sleep 300 & echo $! > {pids}); cat {path}'", timeout=20, label="--token-cmd")
    provider = held(nearly_expired(), source=command)
    assert provider.get(ARM).token.reveal() == fresh
    assert all_gone([int(pids.read_text())])


def test_a_token_cmd_word_starting_with_a_tilde_is_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """`age -d -i ~/.config/age/key.txt` (the README's recipe) reads the key in the home directory."""
    from azexec.tokencmd import split

    monkeypatch.setenv("HOME", "/home/alice")
    argv = split("age -d -i ~/.config/age/key.txt ~/azure.age", "r")
    assert argv == ["age", "-d", "-i", "/home/alice/.config/age/key.txt", "/home/alice/azure.age"]


@pytest.mark.parametrize(
    "command",
    ["pass show azure | head -1", "vault login && vault read x", "op read x; echo", "cat t > copy", "echo $(cat t)"],
    ids=["pipe", "and", "semicolon", "redirection", "command substitution"],
)
def test_shell_syntax_in_a_token_cmd_gets_a_hint(command: str) -> None:
    """What cannot work without a shell is a usage error that says to use sh -c, not a confusing failure."""
    from azexec.tokencmd import split

    with pytest.raises(UsageError, match=r"uses shell syntax .* runs without a shell; wrap it in a shell"):
        split(command, "r")


def test_a_bare_token_line_in_an_env_file_is_warned_about(private_file: Callable[..., Path]) -> None:
    """A token pasted on a line of its own (no KEY=) is ignored with a warning that does not quote it."""
    tok = make_token()
    path = private_file(f"AZURE_CLI_SUBSCRIPTION_ID={SUBSCRIPTION}\n{tok}\n", name="a.env")
    credential = sources.EnvFile(str(path), label="--env-file").read()
    assert credential.token is None
    (warning,) = credential.warnings
    assert warning == (
        f"--env-file {path}: line 2 is ignored: it holds a bare value shaped like a token, not KEY=VALUE; "
        "if it is the token, write it as AZURE_CLI_ACCESS_TOKEN=… on that line"
    )
    assert tok[:20] not in warning


def test_an_env_file_holding_only_a_bare_token_names_the_line(private_file: Callable[..., Path]) -> None:
    """The env file was the only source: not "no access token source", but the line and what to write there."""
    tok = make_token()
    path = private_file(f"AZURE_CLI_SUBSCRIPTION_ID={SUBSCRIPTION}\n{tok}\n", name="a.env")
    result = subprocess.run(
        [AZEXEC, "--env-file", str(path), "--", "true"], capture_output=True, text=True, env=base_env(), timeout=30
    )
    assert result.returncode == 125
    assert result.stderr == (
        f"azexec: --env-file {path}: line 2 holds a bare value shaped like a token, not KEY=VALUE; "
        "if it is the token, write it as AZURE_CLI_ACCESS_TOKEN=… on that line\n"
    )


@pytest.mark.parametrize(
    "command",
    ["sh -c 'pass show azure | head -1'", "sh -c 'echo $(cat t)'", "printf '%s;' x", "jq -r '.a | .b' f"],
    ids=["pipe inside sh -c", "substitution inside sh -c", "quoted semicolon", "quoted jq pipe"],
)
def test_quoted_shell_syntax_is_no_shell_syntax(command: str) -> None:
    """What is quoted is an argument: sh -c '…' (the hint's own advice) and jq filters split as usual."""
    from azexec.tokencmd import split

    assert split(command, "r")
