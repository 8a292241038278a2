"""The command line: option handling, messages, dry-run, and every source end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import AZEXEC, OTHER_TENANT, SUBSCRIPTION, TENANT, base_env, explain, make_token, run, write_private

from azexec.cli import cli

PRINT_TENANT = [sys.executable, "-c", "import os; print(os.environ['AZURE_CLI_TENANT_ID'])"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "--token-env", "T", "--", "true"], "--json goes with --dry-run"),
        (["--token-env", "T"], "no COMMAND given"),
        (["--token-env", "T", "--subscription", "prod", "--", "true"], "'prod' is not a subscription ID (a GUID)"),
        (["--token-env", "T", "--tenant", "not a tenant", "--", "true"], "neither a tenant GUID nor a domain"),
        (["--token-env", "T", "--min-validity", "ten", "--", "true"], "'ten' is not a duration"),
        (["--token-env", "T", "--token-cmd-timeout", "0", "--", "true"], "--token-cmd-timeout"),
        (["--token-fiel", "x", "--", "true"], "No such option '--token-fiel'"),
        (["--", "true"], "no access token source"),
        (["--token-env", "T", "--token-stdin", "--", "true"], "both --token-stdin and --token-env"),
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str], message: str) -> None:
    """Contradictory or malformed options are usage errors (exit 2) that name the problem."""
    result = runner.invoke(cli, args, env={"T": make_token()})
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_azexec_alone_says_the_same_at_a_terminal_and_not() -> None:
    """`azexec` with nothing: one line naming the missing source, exit 2, whether stdin is a terminal or not."""
    import os
    import pty

    env = {k: v for k, v in base_env().items() if not k.startswith("AZEXEC_")}
    piped = subprocess.run([AZEXEC], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=30)
    controller, terminal = pty.openpty()
    try:
        at_terminal = subprocess.run([AZEXEC], stdin=terminal, capture_output=True, text=True, env=env, timeout=30)
    finally:
        os.close(controller)
        os.close(terminal)
    assert (piped.returncode, at_terminal.returncode) == (2, 2)
    assert piped.stderr == at_terminal.stderr
    assert piped.stderr.startswith("azexec: no access token source; ")


@pytest.mark.parametrize("variable", ["AZEXEC__CLICK_DEFAULT_HELP", "AZEXEC_HELP", "AZEXEC_VERSION"])
def test_no_variable_turns_a_run_into_help(variable: str) -> None:
    """click's automatic prefix reaches the eager options too: not azexec's; COMMAND runs."""
    result = run("--token-env", "T", "--", "echo", "ran", env=base_env(T=make_token(), **{variable: "1"}))
    assert (result.returncode, result.stdout) == (0, "ran\n"), explain(result)


def test_the_man_page_lists_only_real_variables_and_shows_h() -> None:
    """Each variable docs/azexec.1 names sets an option; -h is there beside --help."""
    import re

    page = (Path(__file__).resolve().parent.parent / "docs" / "azexec.1").read_text()
    listed = set(re.findall(r"Environment: \\fB(AZEXEC_[A-Z_]+)", page.replace("\\-", "-")))
    options = [p for p in cli.params if isinstance(p, click.Option) and p.allow_from_autoenv]
    assert listed == {p.envvar if isinstance(p.envvar, str) else f"AZEXEC_{(p.name or '').upper()}" for p in options}
    assert "_CLICK_" not in page
    assert "\\fB\\-h\\fR, \\fB\\-\\-help\\fR" in page


def test_a_did_you_mean_question_ends_its_sentence() -> None:
    """click's suggestion is a question: the pointer to --help is a sentence of its own, not "?;"."""
    result = run("--az-logn", "--", "true")
    assert result.returncode == 2
    assert result.stderr == ("azexec: No such option '--az-logn'. Did you mean '--az-login'? See azexec --help.\n")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("45", 45), ("0.5", 0.5)]
)
def test_durations_parse(text: str, seconds: float) -> None:
    """A duration is a number of seconds, or hours, minutes and seconds spelt out."""
    from azexec.cli import MAX_DURATION, Duration

    assert Duration(maximum=MAX_DURATION).convert(text, None, None) == seconds


def test_min_validity_longer_than_the_token_fails(runner: CliRunner) -> None:
    """A token valid for 50 minutes fails --min-validity 1h with 125."""
    result = runner.invoke(
        cli,
        ["--token-env", "T", "--min-validity", "1h", "--dry-run", "--", "true"],
        env={"T": make_token(lifetime=3000)},
    )
    assert result.exit_code == 125, result.output


def test_help_documents_exit_codes_and_signature_policy(runner: CliRunner) -> None:
    """--help says the signature is not verified and lists the exit codes."""
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "decoded, not verified" in text
    for code in ("125 azexec could not", "126 COMMAND cannot", "127 COMMAND not found", "2 usage"):
        assert code in text
    assert "writes nothing to disk, except --az-login's private az directory" in text
    assert "a non-ARM audience is a warning unless --audience" in text


def test_version(runner: CliRunner) -> None:
    """--version prints the installed version."""
    result = runner.invoke(cli, ["--version"], prog_name="azexec")
    assert result.exit_code == 0
    assert result.output.startswith("azexec 0.")


def test_expired_token_fails_in_one_line_without_running(tmp_path: Path, private_file: Callable[..., Path]) -> None:
    """An expired token stops azexec with 125 and one line; COMMAND never runs."""
    tok = make_token(lifetime=-3 * 3600 - 300)
    path = private_file(tok)
    marker = tmp_path / "ran"
    result = run("--token-file", str(path), "--", "touch", str(marker))
    assert result.returncode == 125, explain(result)
    assert result.stderr.startswith("azexec: the access token expired 3 hours 5 minutes ago (")
    assert result.stderr.endswith("UTC); get a fresh one\n")
    assert len(result.stderr.splitlines()) == 1
    assert not marker.exists()


def test_good_token_from_private_file_runs_silently(private_file: Callable[..., Path]) -> None:
    """No output of azexec's own when all is well."""
    result = run("--token-file", str(private_file(make_token())), "--", "true")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_warnings_go_to_stderr_and_quiet_silences_them(private_file: Callable[..., Path]) -> None:
    """A short-lived token warns on stderr; -q silences the warning, not the run."""
    path = private_file(make_token(lifetime=100))
    result = run("--token-file", str(path), "--", *PRINT_TENANT)
    assert result.stdout == f"{TENANT}\n"
    assert result.stderr.startswith("azexec: warning: the access token expires in ")
    quiet = run("-q", "--token-file", str(path), "--", *PRINT_TENANT)
    assert (quiet.stdout, quiet.stderr) == (f"{TENANT}\n", "")


def test_token_stdin_from_a_pipe() -> None:
    """--token-stdin reads a pipe to EOF, JSON included."""
    doc = json.dumps({"accessToken": make_token(), "subscription": SUBSCRIPTION, "tenant": TENANT}, indent=2)
    code = "import os; print(os.environ['AZURE_CLI_SUBSCRIPTION_ID'])"
    result = run("--token-stdin", "--", sys.executable, "-c", code, input=doc)
    assert result.stdout == f"{SUBSCRIPTION}\n", explain(result)
    result = run("--token-file", "-", "--", sys.executable, "-c", code, input=doc)
    assert result.stdout == f"{SUBSCRIPTION}\n", explain(result)


def test_token_stdin_empty_is_an_error() -> None:
    """Nothing on stdin is a clear 125."""
    result = run("--token-stdin", "--", "true", input="")
    assert result.returncode == 125
    assert result.stderr == "azexec: --token-stdin is empty; it should hold the access token\n"


def test_token_cmd_end_to_end(private_file: Callable[..., Path]) -> None:
    """--token-cmd's stdout is the token; its stderr reaches the user; COMMAND's stdin is left alone."""
    path = private_file(make_token())
    cmd = f"sh -c 'echo unlocking vault >&2; cat; cat {path}'"
    result = run("--token-cmd", cmd, "--", "sh", "-c", "cat; printenv AZURE_CLI_TENANT_ID", input="for COMMAND\n")
    assert result.returncode == 0, explain(result)
    assert result.stdout == f"for COMMAND\n{TENANT}\n"
    assert result.stderr == "unlocking vault\n"


def test_token_cmd_failure_is_125_and_not_echoed() -> None:
    """A failing command's stdout, which may hold a secret, is never echoed."""
    tok = make_token()
    result = run("--token-cmd", f"sh -c 'printf %s {tok[:30]}; printf %s {tok[30:]}; exit 4'", "--", "true")
    assert result.returncode == 125, explain(result)
    assert result.stderr == "azexec: --token-cmd failed: sh exited with status 4; see its messages above\n"


def test_token_env_end_to_end() -> None:
    """--token-env takes a CI secret and keeps it from the child."""
    result = run(
        "--token-env", "CI_SECRET", "--", "sh", "-c", 'echo "${CI_SECRET:-gone}"', env=base_env(CI_SECRET=make_token())
    )
    assert result.stdout == "gone\n", explain(result)


def test_env_file_end_to_end_and_the_shipped_example() -> None:
    """The shipped .env.example runs the quick start, and its values reach the child."""
    example = Path(__file__).resolve().parent.parent / ".env.example"
    result = run("-q", "--env-file", str(example), "--", "printenv", "AZURE_CLI_SUBSCRIPTION_ID", "AZURE_CLI_TENANT_ID")
    assert result.returncode == 0, explain(result)
    subscription, tenant = result.stdout.split()
    assert subscription.startswith("00000000-")
    assert tenant.startswith("00000000-")


def test_tenant_mismatch_is_125_naming_both(private_file: Callable[..., Path]) -> None:
    """A tenant that is not the token's stops azexec before az fails obscurely."""
    result = run("--token-file", str(private_file(make_token())), "--tenant", OTHER_TENANT, "--", "true")
    assert result.returncode == 125
    assert OTHER_TENANT in result.stderr
    assert TENANT in result.stderr


def test_dry_run_runs_nothing_and_reports(private_file: Callable[..., Path], tmp_path: Path) -> None:
    """End to end: --dry-run runs nothing, and reports the command and the redacted token (test_report has the text)."""
    tok = make_token(roles=["Contributor"])
    path = private_file(tok)
    marker = tmp_path / "ran"
    result = run("--dry-run", "--token-file", str(path), "--subscription", SUBSCRIPTION, "--", "touch", str(marker))
    assert result.returncode == 0, explain(result)
    assert not marker.exists()
    assert result.stdout.startswith(f"would run: touch {marker}\n  found at: {shutil.which('touch')}\n")
    assert f"AZURE_CLI_ACCESS_TOKEN=<redacted: {len(tok)} chars, sha256 " in result.stdout
    assert tok[:7] not in result.stdout


def test_dry_run_json_report(private_file: Callable[..., Path]) -> None:
    """--dry-run --json prints the same report as JSON, token redacted."""
    tok = make_token()
    result = run("--dry-run", "--json", "--token-file", str(private_file(tok)), "--", "az", "group", "list")
    assert result.returncode == 0, explain(result)
    report = json.loads(result.stdout)
    assert report["command"] == ["az", "group", "list"]
    assert report["variables"]["AZURE_CLI_SUBSCRIPTION_ID"] is None
    assert report["variables"]["AZURE_CLI_TENANT_ID"] == {"value": TENANT, "source": "the token's tid claim"}
    assert report["variables"]["AZURE_CLI_ACCESS_TOKEN"]["value"].startswith(f"<redacted: {len(tok)} chars")
    assert report["token"]["tenant"] == TENANT
    assert 3500 < report["token"]["seconds_left"] <= 3600
    assert tok[:7] not in result.stdout


def test_dry_run_reports_errors_with_their_code(private_file: Callable[..., Path]) -> None:
    """--dry-run exits with the code of the error it finds."""
    result = run("--dry-run", "--token-file", str(private_file(make_token(lifetime=-5))), "--", "true")
    assert result.returncode == 125
    assert result.stdout == ""


def test_dry_run_runs_the_token_command_and_no_command(tmp_path: Path) -> None:
    """As docs/usage.md says: the token command runs (to check the token), COMMAND does not; a COMMAND that would
    not be found is a finding (127, printed), and the dry run exits 0."""
    marker = tmp_path / "token-command-ran"
    command = f"sh -c 'touch {marker}; cat {write_private(tmp_path / 'token', make_token())}'"
    result = run("--dry-run", "--token-cmd", command, "--", "no-such-command-here")
    assert result.returncode == 0, explain(result)
    assert marker.exists()
    assert "127" in result.stdout
    usage = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text().replace("\n", " ")
    assert "a `--token-cmd` **does run**" in usage


def _forged(**claims: object) -> str:
    """A token with claims pyjwt would not encode (NaN, surrogates): JSON written by hand."""
    import base64

    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    payload = {"aud": "https://management.azure.com/", "exp": 4102444800, "tid": TENANT, **claims}
    return f"{part({'alg': 'HS256'})}.{part(payload)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("args", "stdin", "status"),
    [
        (["--token-stdin"], _forged(nbf=float("nan")), 125),
        (["--token-stdin"], _forged(nbf=float("inf")), 125),
        (["--token-stdin"], _forged(exp=float("inf")), 125),
        (["--token-stdin"], _forged(tid="\0"), 125),
        (["--token-stdin"], _forged(tid="\udc80"), 125),
        (["--dry-run", "--token-stdin"], _forged(tid="\udc80"), 125),
        (["--dry-run", "--token-stdin"], _forged(upn="\udc80\ud800"), 0),
        (["--token-stdin"], "[" * 100_000 + "]" * 100_000, 125),
        (["--token-stdin"], "{" + '"a":' * 50_000 + "1" + "}" * 50_000, 125),
        (["--token-stdin", "--token-cmd-timeout", "inf"], _forged(), 2),
        (["--token-stdin", "--token-cmd-timeout", "nan"], _forged(), 2),
        (["--token-stdin", "--token-cmd-timeout", "1e10"], _forged(), 2),
        (["--token-stdin", "--token-cmd-timeout", "99999999999h"], _forged(), 2),
        (["--token-stdin", "--min-validity", "9" * 400], _forged(), 2),
    ],
    ids=[
        "nbf-nan",
        "nbf-inf",
        "exp-inf",
        "tid-nul",
        "tid-surrogate",
        "dry-run-tid-surrogate",
        "dry-run-upn-surrogates",
        "json-deep-array",
        "json-deep-object",
        "timeout-inf",
        "timeout-nan",
        "timeout-1e10",
        "timeout-hours",
        "min-validity-400-digits",
    ],
)
def test_no_traceback_for_any_input(args: list[str], stdin: str, status: int) -> None:
    """Hostile values end in one clear message and the usual status, never a traceback."""
    result = run(*args, "--", "true", input=stdin.encode("utf-8", "surrogatepass"))
    assert result.returncode == status, explain(result)
    assert "Traceback" not in result.stderr
    if status == 125:
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_azexec_json_set_globally_does_not_break_a_run() -> None:
    """AZEXEC_JSON=1 in the environment applies to --dry-run only; a plain run still runs."""
    result = run(
        "--token-env", "T", "--", "printenv", "AZURE_CLI_TENANT_ID", env=base_env(T=make_token(), AZEXEC_JSON="1")
    )
    assert (result.returncode, result.stdout) == (0, f"{TENANT}\n"), explain(result)


def test_json_on_the_command_line_still_needs_dry_run() -> None:
    """--json typed without --dry-run stays a usage error."""
    result = run("--json", "--token-env", "T", "--", "true", env=base_env(T=make_token()))
    assert result.returncode == 2


def test_a_path_that_is_not_utf8_gets_a_runnable_chmod_hint(tmp_path: Path) -> None:
    """The warning's `chmod 600 …` is quoted so that pasting it into bash fixes that very file."""
    raw = os.fsencode(tmp_path) + b"/tok\xff en"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, make_token().encode())
    os.close(fd)
    os.chmod(raw, 0o644)
    result = subprocess.run(
        [AZEXEC, "--token-file", raw, "--", "true"], capture_output=True, env=base_env(), timeout=30
    )
    assert result.returncode == 0, result.stderr
    hint = result.stderr.decode().split("run: ", 1)[1].strip()
    subprocess.run(["bash", "-c", hint], check=True, timeout=30)
    assert os.stat(raw).st_mode & 0o777 == 0o600


def test_absurd_expiry_is_described_not_printed_as_digits() -> None:
    """exp = 10**300 is clamped to year 9999 in --dry-run, not shown as a 300-digit number."""
    result = run("--dry-run", "--token-stdin", "--", "true", input=_forged(exp=10**300))
    assert result.returncode == 0, explain(result)
    assert "9999-12-31 23:59:59 UTC" in result.stdout
    assert "0" * 50 not in result.stdout


def test_the_man_page_is_generated_from_the_command() -> None:
    """docs/azexec.1 is what scripts/manpage writes now: an option added or changed cannot leave it stale."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(root / "scripts" / "manpage"), "--check"], timeout=60, check=False)
    assert result.returncode == 0, "docs/azexec.1 is stale: run scripts/manpage"


def test_help_fits_a_screen_in_the_order_choices_are_made() -> None:
    """--help at 80 columns: at most 60 lines, options under the four choices, in order."""
    result = subprocess.run(
        [AZEXEC, "--help"], capture_output=True, text=True, env=base_env(COLUMNS="80"), timeout=30, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) <= 60
    headings = [line for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["Where the token comes from:", "Checks:", "How COMMAND runs:", "Output:"]
    assert "--az-login" in result.stdout.split("Examples:")[1].split("\n\n")[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--nope"],
        ["--min-validity", "15x", "--token-env", "T", "--", "true"],
        ["--json", "--token-env", "T", "--", "true"],
    ],
    ids=["unknown option", "bad duration", "--json without --dry-run"],
)
def test_a_usage_error_is_one_line_with_a_hint(args: list[str]) -> None:
    """Not click's four-line block: azexec's one line, then where to look."""
    result = run(*args, env=base_env(T=make_token()))
    assert result.returncode == 2, explain(result)
    assert result.stderr.startswith("azexec: ")
    assert result.stderr.rstrip("\n").endswith(("; see azexec --help", "? See azexec --help."))
    assert len(result.stderr.splitlines()) == 1


def _dry_run_json(*args: str, **env: str) -> dict[str, object]:
    result = run("--dry-run", "--json", "--token-env", "T", *args, env=base_env(T=make_token(), **env))
    assert result.returncode == 0, explain(result)
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_dry_run_says_what_the_identity_server_adds_and_removes() -> None:
    """--identity-server: mode resident, the endpoint (secrets as placeholders), what COMMAND loses."""
    report = _dry_run_json("--identity-server", "--", "true", AZURE_CLIENT_ID="stray", ARM_SUBSCRIPTION_ID="stale")
    assert report["mode"] == "resident"
    assert report["parts"] == ["identity server", "expiry watch"]
    variables = report["variables"]
    assert isinstance(variables, dict)
    assert variables["IDENTITY_ENDPOINT"]["value"] == "http://127.0.0.1:<port>/<random path>"
    assert variables["IDENTITY_HEADER"]["value"] == "<random, 32 bytes>"
    assert variables["AZURE_TOKEN_CREDENTIALS"]["value"] == "ManagedIdentityCredential"
    assert {"AZURE_CLIENT_ID", "ARM_SUBSCRIPTION_ID", "T"} <= set(report["removed"])  # type: ignore[arg-type]


def test_dry_run_says_what_az_login_runs_and_where() -> None:
    """--az-login: the az login and az account set steps, and the private directory."""
    report = _dry_run_json("--az-login", "--subscription", SUBSCRIPTION, "--", "true")
    steps = report["before_command"]
    assert isinstance(steps, list)
    assert steps[0].startswith("write az's profile from Resource Manager's list of subscriptions")
    assert steps[1:3] == [
        "az login --identity --allow-no-subscriptions --output none",
        f"az account set --subscription {SUBSCRIPTION} --output none",
    ]
    variables = report["variables"]
    assert isinstance(variables, dict)
    assert variables["AZURE_CONFIG_DIR"]["value"].startswith("<a new private directory in ")


def test_dry_run_predicts_az_login_without_az_as_125(tmp_path: Path) -> None:
    """--az-login where az is not on PATH: the dry run predicts 125, and the real run exits 125."""
    true = shutil.which("true")
    assert true is not None
    report = _dry_run_json("--az-login", "--", true, PATH=str(tmp_path))
    assert (report["exit_status"], report["failure"]) == (125, "--az-login: az is not on COMMAND's PATH")
    real = run("--az-login", "--token-env", "T", "--", true, env=base_env(T=make_token(), PATH=str(tmp_path)))
    assert real.returncode == 125, explain(real)


@pytest.mark.parametrize("kind", ["symlink loop", "name too long"])
def test_dry_run_predicts_the_real_status(tmp_path: Path, kind: str) -> None:
    """A symlink loop or an over-long name: 126 predicted and 126 got, as env(1) exits."""
    if kind == "symlink loop":
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        command = str(tmp_path / "a")
    else:
        command = str(tmp_path / ("x" * 300))
    assert _dry_run_json("--", command)["exit_status"] == 126
    assert run("--token-env", "T", "--", command, env=base_env(T=make_token())).returncode == 126
