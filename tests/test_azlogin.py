"""--az-login with the real Azure CLI 2.91.0, offline, against a fake ARM over TLS on 127.0.0.1.

The test owns an AZURE_CONFIG_DIR in which it registers a cloud whose Resource
Manager is the fake; --az-login copies that configuration into its private
directory, logs az in through the identity server, and removes the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakearm import FakeArm, self_signed, subscription
from helpers import (
    AZ_VERSIONS,
    AZEXEC,
    TENANT,
    Terminal,
    all_gone,
    az_bin,
    base_env,
    claims_of,
    explain,
    make_token,
    mint_command,
    run,
    wait_until,
    write_private,
)

pytestmark = pytest.mark.slow

SUBSCRIPTION = "d1b1c1a1-0000-4000-8000-00000000abcd"
SECOND_SUBSCRIPTION = "d1b1c1a1-0000-4000-8000-00000000beef"
LIGHTHOUSE = "99999999-0000-4000-8000-000000000009"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made now."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def arm(certificate: tuple[Path, Path]) -> Iterator[FakeArm]:
    # The second as real ARM lists one managed through Azure Lighthouse.
    listed = [subscription(SUBSCRIPTION, TENANT), subscription(SECOND_SUBSCRIPTION, TENANT, managed_by=LIGHTHOUSE)]
    fake = FakeArm(*certificate, listed)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(params=AZ_VERSIONS, ids=[f"az {version}" for version in AZ_VERSIONS])
def az_version(request: pytest.FixtureRequest) -> str:
    """Each real az release the suite runs."""
    return str(request.param)


@pytest.fixture
def az_env(arm: FakeArm, certificate: tuple[Path, Path], tmp_path: Path, az_version: str) -> dict[str, str]:
    """An environment whose az (each release) has a test-owned config dir, the fake ARM's cloud registered and set."""
    bin_dir = az_bin(az_version)
    config = tmp_path / "azure-config"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in base_env().items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_", "ARM_"))}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        AZURE_CONFIG_DIR=str(config),
        AZURE_CORE_COLLECT_TELEMETRY="0",
        REQUESTS_CA_BUNDLE=str(certificate[0]),
        XDG_RUNTIME_DIR=str(runtime),
    )
    # What `az cloud register`, `az cloud set` and `az config set core.output=json` write (2.91.0 does
    # exactly this); written here because 2.72.0's register insists on discovering the endpoints.
    config.mkdir()
    (config / "clouds.config").write_text(
        "[FakeCloud]\nendpoint_active_directory = https://login.fake.invalid\n"
        "endpoint_active_directory_resource_id = https://management.core.windows.net/\n"
        f"endpoint_resource_manager = {arm.url}\n"
    )
    (config / "config").write_text("[cloud]\nname = FakeCloud\n\n[core]\noutput = json\n")
    return env


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def token_file(tmp_path: Path, token: str) -> Path:
    return write_private(tmp_path / "token", token)


def test_install_test_tools_installs_every_release_the_suite_runs() -> None:
    """scripts/install-test-tools installs the releases of the one list AZ_VERSIONS is read from."""
    script = (Path(__file__).resolve().parent.parent / "scripts" / "install-test-tools").read_text()
    loop = """grep -v '^#' "$(dirname "$0")/../tests/az-releases.txt" | while read -r az_version az_origin; do"""
    assert loop in script


@pytest.mark.parametrize("version", AZ_VERSIONS)
def test_the_real_az_is_the_pinned_version(version: str) -> None:
    """The suite runs the Azure CLI releases it names, installed by scripts/install-test-tools."""
    az = str(az_bin(version) / "az")
    found = subprocess.run([az, "version"], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(found.stdout)["azure-cli"] == version


def test_az_group_list_works_with_the_token(az_env: dict[str, str], arm: FakeArm, tmp_path: Path) -> None:
    """The headline: az group list prints the fake group, and every ARM request carried Bearer <the token>."""
    tok = make_token()
    path = token_file(tmp_path, tok)
    before = snapshot(Path(az_env["AZURE_CONFIG_DIR"]))
    result = run("--az-login", "--token-cmd", f"cat {path}", "--", "az", "group", "list", env=az_env, timeout=180)
    assert result.returncode == 0, explain(result)
    assert [group["name"] for group in json.loads(result.stdout)] == ["rg-fake"]
    assert arm.bearer_hashes() == {_sha(tok)}
    assert snapshot(Path(az_env["AZURE_CONFIG_DIR"])) == before
    assert list(Path(az_env["XDG_RUNTIME_DIR"]).iterdir()) == []


def test_subscription_selects_the_one_az_uses(az_env: dict[str, str], tmp_path: Path) -> None:
    """--subscription becomes az's active subscription (az account set)."""
    path = token_file(tmp_path, make_token())
    args = ["--az-login", "--subscription", SECOND_SUBSCRIPTION, "--token-file", str(path), "--"]
    result = run(*args, "az", "account", "show", "--query", "id", "-o", "tsv", env=az_env, timeout=180)
    assert (result.returncode, result.stdout.strip()) == (0, SECOND_SUBSCRIPTION), explain(result)


#: What each parallel run's COMMAND asks az: the token it holds, the subscription, Resource Manager's groups.
PARALLEL_SCRIPT = (
    "az account get-access-token --query accessToken -o tsv && az account show --query id -o tsv"
    " && az group list --query '[0].name' -o tsv"
)


def test_parallel_runs_each_see_their_own_login(az_env: dict[str, str], arm: FakeArm, tmp_path: Path) -> None:
    """Four --az-login runs at once (make -j, runners sharing a host), each its own token and subscription: each az
    sees its own login, Resource Manager sees all four tokens, and the user's az directory is as it was."""
    tokens = [make_token(oid=f"0000000{i}-0000-4000-8000-000000000000") for i in range(4)]
    subscriptions = [SUBSCRIPTION, SECOND_SUBSCRIPTION] * 2
    before = snapshot(Path(az_env["AZURE_CONFIG_DIR"]))
    runs: list[subprocess.Popen[str]] = []
    try:
        for i, (token, chosen) in enumerate(zip(tokens, subscriptions, strict=True)):
            path = write_private(tmp_path / f"token{i}", token)
            argv = [AZEXEC, "--az-login", "--subscription", chosen, "--token-file", str(path), "--", "sh", "-c"]
            runs.append(subprocess.Popen([*argv, PARALLEL_SCRIPT], env=az_env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True))  # fmt: skip
        outputs = [process.communicate(timeout=300) for process in runs]
    finally:
        for process in runs:
            process.kill()
            process.wait(timeout=60)
    for process, (stdout, stderr), token, chosen in zip(runs, outputs, tokens, subscriptions, strict=True):
        assert process.returncode == 0, stderr
        assert stdout.split() == [token, chosen, "rg-fake"]
    assert arm.bearer_hashes() == {_sha(token) for token in tokens}
    assert snapshot(Path(az_env["AZURE_CONFIG_DIR"])) == before
    assert list(Path(az_env["XDG_RUNTIME_DIR"]).iterdir()) == []


def test_two_az_calls_in_one_command(az_env: dict[str, str], tmp_path: Path) -> None:
    """A second az process inside COMMAND asks the endpoint again, and works."""
    path = token_file(tmp_path, make_token())
    script = "az group list --query '[0].name' -o tsv && az account show --query tenantId -o tsv"
    result = run("--az-login", "--token-file", str(path), "--", "sh", "-c", script, env=az_env, timeout=180)
    assert (result.returncode, result.stdout.split()) == (0, ["rg-fake", TENANT]), explain(result)


def test_a_resource_token_command_serves_az_get_access_token(az_env: dict[str, str], tmp_path: Path) -> None:
    """With {resource}, az account get-access-token --resource https://vault.azure.net gets a Key Vault token."""
    token_cmd = mint_command(tmp_path)
    args = ["--az-login", "--token-cmd", token_cmd, "--", "az", "account", "get-access-token"]
    result = run(*args, "--resource", "https://vault.azure.net", env=az_env, timeout=180)
    assert result.returncode == 0, explain(result)
    assert claims_of(json.loads(result.stdout)["accessToken"])["aud"] == "https://vault.azure.net"


def test_the_directory_is_gone_after_command_is_killed(az_env: dict[str, str], tmp_path: Path) -> None:
    """COMMAND killed by SIGTERM (sent to azexec, forwarded): azexec dies of it, and the directory is gone."""
    path = token_file(tmp_path, make_token())
    marker = tmp_path / "dir"
    script = f'echo "$AZURE_CONFIG_DIR" > {marker}; exec sleep 60'
    proc = subprocess.Popen([AZEXEC, "--az-login", "--token-file", str(path), "--", "sh", "-c", script], env=az_env)
    try:
        wait_until(lambda: marker.exists() and marker.read_text().strip(), within=120, what="COMMAND's start")
        private = Path(marker.read_text().strip())
        assert private.is_dir()
        assert private.parent == Path(az_env["XDG_RUNTIME_DIR"])
        assert private.stat().st_mode & 0o777 == 0o700
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert not private.exists()


def test_a_bad_token_fails_before_az_runs(az_env: dict[str, str], arm: FakeArm, tmp_path: Path) -> None:
    """An expired token: 125 and one line, and az never talks to ARM."""
    path = token_file(tmp_path, make_token(lifetime=-60))
    result = run("--az-login", "--token-file", str(path), "--", "az", "group", "list", env=az_env, timeout=180)
    assert result.returncode == 125
    assert len(result.stderr.splitlines()) == 1
    assert arm.bearer_hashes() == set()


def test_az_login_failure_is_shown_and_exits_125(az_env: dict[str, str], tmp_path: Path) -> None:
    """az login fails (its ARM is unreachable): az's own message, then azexec's line; COMMAND never runs."""
    path = token_file(tmp_path, make_token())
    marker = tmp_path / "ran"
    env = {**az_env, "REQUESTS_CA_BUNDLE": "/dev/null"}  # az cannot trust the fake ARM now
    result = run("--az-login", "--token-file", str(path), "--", "touch", str(marker), env=env, timeout=300)
    assert result.returncode == 125, explain(result)
    assert "azexec: --az-login: az login --identity failed" in result.stderr
    assert not marker.exists()
    assert list(Path(az_env["XDG_RUNTIME_DIR"]).iterdir()) == []


def test_az_not_on_path_is_a_clear_125(tmp_path: Path) -> None:
    """No az on COMMAND's PATH: one line naming --az-login."""
    path = token_file(tmp_path, make_token())
    true = shutil.which("true")
    assert true is not None
    result = run("--az-login", "--token-file", str(path), "--", true, env=base_env(PATH="/nonexistent"))
    assert result.returncode == 125
    assert (
        result.stderr == "azexec: --az-login: az is not on COMMAND's PATH; install the Azure CLI, or drop --az-login\n"
    )


def test_dry_run_of_az_without_az_login_says_released_az_ignores_the_variable(tmp_path: Path) -> None:
    """--dry-run -- az …: a note that released az ignores AZURE_CLI_ACCESS_TOKEN, suggesting --az-login."""
    path = token_file(tmp_path, make_token())
    result = run("--dry-run", "--token-file", str(path), "--", "az", "group", "list")
    assert "note: released az (2.91.0 and older) ignores AZURE_CLI_ACCESS_TOKEN" in result.stdout
    assert "--az-login" in result.stdout.splitlines()[-1]
    with_login = run("--dry-run", "--az-login", "--token-file", str(path), "--", "az", "group", "list")
    assert "note:" not in with_login.stdout


def _traced_writes(env: dict[str, str], tmp_path: Path, token: str) -> tuple[list[str], list[str]]:
    """Run --az-login -- true under strace -f; return each path opened for writing, and each path written holding
    the token."""
    import re

    path = token_file(tmp_path, token)
    log = tmp_path / "strace.log"
    argv = ["strace", "-f", "-qq", "-y", "-s", "100000", "-o", str(log), "-e", "trace=%file,write,pwrite64"]
    result = subprocess.run(
        [*argv, AZEXEC, "--az-login", "--subscription", SECOND_SUBSCRIPTION, "--token-file", str(path), "--", "true"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    opened = re.compile(r'open(?:at|at2)?\((?:AT_FDCWD|\d+)?(?:<[^>]*>)?,?\s*"([^"]*)",\s*([A-Z_|]+)')
    written, leaked = [], []
    for line in log.read_text().splitlines():
        match = opened.search(line)
        writing = match and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", match.group(2))
        if match and writing and "= -1 " not in line and match.group(1) not in ("/dev/null", "/dev/tty"):
            written.append(match.group(1))
        write = re.search(r"\b(?:p?write(?:64)?)\(\d+<([^>]*)>, \"(.*)\", \d+", line)
        if write and write.group(1) not in ("/dev/null", "/dev/tty") and token[40:80] in write.group(2):
            leaked.append(write.group(1))
    return written, leaked


def test_nothing_is_written_but_az_profile_in_the_private_directory(az_env: dict[str, str], tmp_path: Path) -> None:
    """strace -f of azexec and the az it runs: writes only inside the private directory, none holding the token."""
    runtime = az_env["XDG_RUNTIME_DIR"]
    written, leaked = _traced_writes(az_env, tmp_path, make_token())
    assert [target for target in written if not target.startswith(runtime)] == []
    assert leaked == []
    assert any(p.endswith("azureProfile.json") for p in written), "the check saw none of az's writes"


@pytest.mark.parametrize("az_version", [AZ_VERSIONS[0]])
def test_without_xdg_runtime_dir_nothing_is_written_beside_the_private_directory(
    az_env: dict[str, str], tmp_path: Path
) -> None:
    """XDG_RUNTIME_DIR unset: the private directory goes in $TMPDIR, chosen without a probe file written there
    (tempfile.gettempdir() writes one): every write is inside azexec-az-*."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o700)
    env = {k: v for k, v in az_env.items() if k != "XDG_RUNTIME_DIR"}
    written, leaked = _traced_writes({**env, "TMPDIR": str(scratch)}, tmp_path, make_token())
    assert [target for target in written if not target.startswith(f"{scratch}/azexec-az-")] == []
    assert leaked == []
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGALRM], ids=["SIGTERM", "SIGALRM"])
def test_stopping_azexec_during_az_login_kills_az_and_removes_the_directory(tmp_path: Path, stop: int) -> None:
    """SIGTERM (or SIGALRM) while az login runs: az is killed, the directory removed, and azexec dies of it."""
    fake_bin, runtime = tmp_path / "bin", tmp_path / "runtime"
    fake_bin.mkdir()
    runtime.mkdir(mode=0o700)
    pids = tmp_path / "pids"
    az = fake_bin / "az"
    az.write_text(f'#!/bin/sh\necho "$$ $AZURE_CONFIG_DIR" > {pids}\nexec sleep 300\n')
    az.chmod(0o755)
    path = token_file(tmp_path, make_token())
    env = {**base_env(), "PATH": f"{fake_bin}:{base_env()['PATH']}", "XDG_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen([AZEXEC, "--az-login", "--token-file", str(path), "--", "true"], env=env)
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), within=60, what="az login's start")
        az_pid, private = pids.read_text().split()
        assert Path(private).is_dir()
        proc.send_signal(stop)
        assert proc.wait(timeout=60) == -stop
    finally:
        proc.kill()
        proc.wait()
    assert all_gone([int(az_pid)])
    assert list(runtime.iterdir()) == []


def test_a_command_that_cannot_run_fails_before_az_login(tmp_path: Path) -> None:
    """--az-login -- no-such-command: 127 at once, and az is never run."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    ran = tmp_path / "az-ran"
    az = fake_bin / "az"
    az.write_text(f"#!/bin/sh\ntouch {ran}\n")
    az.chmod(0o755)
    path = token_file(tmp_path, make_token())
    env = {**base_env(), "PATH": f"{fake_bin}:{base_env()['PATH']}"}
    result = run("--az-login", "--token-file", str(path), "--", "azexec-no-such-command", env=env)
    assert result.returncode == 127, explain(result)
    assert "azexec-no-such-command: command not found" in result.stderr
    assert not ran.exists()


def _fake_az(tmp_path: Path, script: str) -> dict[str, str]:
    """An environment whose az is SCRIPT (sh), with a private runtime directory and its own config dir."""
    fake_bin, runtime = tmp_path / "bin", tmp_path / "runtime"
    fake_bin.mkdir()
    runtime.mkdir(mode=0o700)
    az = fake_bin / "az"
    az.write_text("#!/bin/sh\n" + script)
    az.chmod(0o755)
    return {
        **base_env(),
        "PATH": f"{fake_bin}:{base_env()['PATH']}",
        "XDG_RUNTIME_DIR": str(runtime),
        "AZURE_CONFIG_DIR": str(tmp_path / "azure"),
    }


def _broken_config(kind: str, config: Path) -> None:
    """Make the user's az config CONFIG (in a config dir) broken in the way KIND names."""
    if kind == "config dir is a file":
        config.parent.write_text("not a directory")
        return
    config.parent.mkdir()
    if kind == "FIFO":
        os.mkfifo(config)
    elif kind == "symlink loop":
        config.symlink_to(config)
    elif kind == "link to /dev/zero":
        config.symlink_to("/dev/zero")
    elif kind == "over 1 MiB":
        config.write_text("[core]\n" + "# padding\n" * 120_000)
    elif kind == "not an INI file":
        config.write_text("this is not = an ini\n[unclosed\n")


@pytest.mark.parametrize(
    "kind", ["config dir is a file", "FIFO", "symlink loop", "link to /dev/zero", "over 1 MiB", "not an INI file"]
)
def test_a_broken_user_config_is_one_line_and_125(tmp_path: Path, kind: str) -> None:
    """Copying the user's settings checks them: anything but a small regular az config fails at once, az never runs."""
    ran = tmp_path / "az-ran"
    env = _fake_az(tmp_path, f"touch {ran}\n")
    _broken_config(kind, Path(env["AZURE_CONFIG_DIR"]) / "config")
    path = token_file(tmp_path, make_token())
    result = run("--az-login", "--token-file", str(path), "--", "true", env=env, timeout=30)
    assert result.returncode == 125, explain(result)
    assert result.stderr.startswith("azexec: --az-login: "), explain(result)
    assert len(result.stderr.splitlines()) == 1, explain(result)
    assert not ran.exists()
    assert list((tmp_path / "runtime").iterdir()) == []


def test_az_login_has_a_deadline(tmp_path: Path) -> None:
    """An az login that never returns: killed at --token-cmd-timeout, one line naming it, 125, nothing left."""
    pids = tmp_path / "pids"
    env = _fake_az(tmp_path, f"echo $$ > {pids}\necho 'contacting ARM' >&2\nexec sleep 300\n")
    path = token_file(tmp_path, make_token())
    result = run("--az-login", "--token-cmd-timeout", "2s", "--token-file", str(path), "--", "true", env=env)
    assert result.returncode == 125, explain(result)
    assert "contacting ARM" in result.stderr  # az's own messages, then azexec's line
    assert "az login --identity did not finish within 2s and was killed" in result.stderr
    assert all_gone([int(pids.read_text())])
    assert list((tmp_path / "runtime").iterdir()) == []


NOTED = "azexec: waiting for az login --identity (through azexec's identity server)…"


def test_a_slow_az_login_is_noted_at_a_terminal_and_the_note_cleared(
    tmp_path: Path, terminal: Callable[..., Terminal]
) -> None:
    """At a terminal, az login taking 3 s gets a note after a second, cleared before COMMAND runs."""
    env = _fake_az(tmp_path, 'case "$1" in login) sleep 3;; esac\nexit 0\n')
    path = token_file(tmp_path, make_token())
    term = terminal(["--az-login", "--token-file", str(path), "--", "echo", "command ran"], env)
    term.expect("command ran")
    assert term.finish() == 0
    assert NOTED.encode() + b"\r\x1b[K" in term.output


@pytest.mark.parametrize("quiet", [False, True], ids=["not a terminal", "quiet"])
def test_a_slow_az_login_says_nothing_in_a_log(tmp_path: Path, quiet: bool) -> None:
    """Not at a terminal (a CI log), or with -q, a slow az login prints no note."""
    env = _fake_az(tmp_path, 'case "$1" in login) sleep 2;; esac\nexit 0\n')
    path = token_file(tmp_path, make_token())
    result = run(*(["-q"] if quiet else []), "--az-login", "--token-file", str(path), "--", "true", env=env)
    assert result.returncode == 0, explain(result)
    assert "waiting for" not in result.stderr, explain(result)


def test_az_keeps_the_users_extensions_and_logs_stay_private(tmp_path: Path) -> None:
    """COMMAND's az looks for extensions where the user's az does; its log directory is the private one."""
    env = _fake_az(tmp_path, "exit 0\n")
    config = Path(env["AZURE_CONFIG_DIR"])
    config.mkdir()
    (config / "config").write_text("[logging]\nenable_log_file = yes\nlog_dir = /tmp/azexec-outside\n")
    path = token_file(tmp_path, make_token())
    script = 'printf "%s\\n" "$AZURE_EXTENSION_DIR" "$AZURE_LOGGING_LOG_DIR" "$AZURE_CONFIG_DIR"'
    result = run("--az-login", "--token-file", str(path), "--", "sh", "-c", script, env=env)
    assert result.returncode == 0, explain(result)
    extensions, logs, private = result.stdout.split()
    assert extensions == str(config / "cliextensions")
    assert logs == private


def test_the_real_az_writes_no_log_outside_the_private_directory(
    az_env: dict[str, str], arm: FakeArm, tmp_path: Path
) -> None:
    """A user config with enable_log_file and log_dir: az's logs of its identity-server requests stay private."""
    outside = tmp_path / "az-logs"
    config = Path(az_env["AZURE_CONFIG_DIR"]) / "config"
    config.write_text(config.read_text() + f"\n[logging]\nenable_log_file = yes\nlog_dir = {outside}\n")
    path = token_file(tmp_path, make_token())
    result = run("--az-login", "--token-file", str(path), "--", "az", "group", "list", env=az_env, timeout=180)
    assert result.returncode == 0, explain(result)
    assert not outside.exists() or list(outside.rglob("*")) == []


def test_mask_masks_a_key_vault_token_the_real_az_prints(az_env: dict[str, str], tmp_path: Path) -> None:
    """--az-login --mask: az account get-access-token --resource https://vault.azure.net prints ***, not the token."""
    args = ["--az-login", "--mask", "--token-cmd", mint_command(tmp_path), "--", "az", "account", "get-access-token"]
    result = run(*args, "--resource", "https://vault.azure.net", "-o", "json", env=az_env, timeout=180)
    assert result.returncode == 0, explain(result)
    assert json.loads(result.stdout)["accessToken"] == "***"
    assert (tmp_path / "count").read_text().split()[-1] == "https://vault.azure.net"


def test_az_login_with_a_token_for_another_resource_fails_before_az(tmp_path: Path) -> None:
    """--az-login with a Microsoft Graph token: one line, 125, and az never runs."""
    ran = tmp_path / "az-ran"
    env = _fake_az(tmp_path, f"touch {ran}\n")
    path = token_file(tmp_path, make_token(aud="https://graph.microsoft.com"))
    result = run("--az-login", "--token-file", str(path), "--", "az", "group", "list", env=env)
    assert result.returncode == 125, explain(result)
    assert len(result.stderr.splitlines()) == 1, explain(result)
    assert "is for audience https://graph.microsoft.com, not https://management.core.windows.net/" in result.stderr
    assert not ran.exists()


@pytest.mark.parametrize(("options", "said"), [([], True), (["-q"], False)], ids=["said", "quiet"])
def test_plain_az_is_told_it_needs_az_login(tmp_path: Path, options: list[str], said: bool) -> None:
    """COMMAND is az without --az-login: one line says released az ignores the variable (not with -q); az runs."""
    ran = tmp_path / "az-ran"
    env = _fake_az(tmp_path, f"touch {ran}\n")
    result = run(*options, "--token-env", "T", "--", "az", "group", "list", env={**env, "T": make_token()})
    assert result.returncode == 0, explain(result)
    assert ran.exists()
    assert ("add --az-login" in result.stderr) is said
    assert len(result.stderr.splitlines()) == int(said)


def test_az_account_show_names_the_user_system_assigned_identity(az_env: dict[str, str], tmp_path: Path) -> None:
    """What the README says az shows under --az-login: user systemAssignedIdentity, a service principal."""
    path = token_file(tmp_path, make_token())
    result = run("--az-login", "--token-file", str(path), "--", "az", "account", "show", env=az_env, timeout=180)
    assert result.returncode == 0, explain(result)
    user = json.loads(result.stdout)["user"]
    assert (user["name"], user["type"]) == ("systemAssignedIdentity", "servicePrincipal")


def test_a_failing_az_login_with_stderr_closed_still_exits_125(tmp_path: Path) -> None:
    """The caller closed stderr (2>&-): az login fails, azexec exits 125 all the same, no traceback to nowhere."""
    env = _fake_az(tmp_path, "echo 'login refused' >&2; exit 1\n")
    path = token_file(tmp_path, make_token())
    script = f'exec "{AZEXEC}" --az-login --token-file {path} -- true 2>&-'
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == 125, result


def test_without_xdg_runtime_dir_the_directory_goes_under_tmpdir(tmp_path: Path) -> None:
    """macOS has no XDG_RUNTIME_DIR and a per-user $TMPDIR: the private directory goes there, and is removed."""
    seen = tmp_path / "seen"
    env = _fake_az(tmp_path, "exit 0\n")
    del env["XDG_RUNTIME_DIR"]
    tmpdir = tmp_path / "per-user-tmp"
    tmpdir.mkdir(mode=0o700)
    env["TMPDIR"] = str(tmpdir)
    path = token_file(tmp_path, make_token())
    result = run(
        "--az-login", "--token-file", str(path), "--", "sh", "-c", f'echo "$AZURE_CONFIG_DIR" > {seen}', env=env
    )
    assert result.returncode == 0, explain(result)
    assert Path(seen.read_text().strip()).parent == tmpdir
    assert list(tmpdir.iterdir()) == []


def test_only_an_older_az_gets_the_2017_protocol(az_env: dict[str, str], az_version: str, tmp_path: Path) -> None:
    """az 2.72.0 logged in through MSI_ENDPOINT, so COMMAND gets it; az 2.91.0 did not, so COMMAND never sees it."""
    path = token_file(tmp_path, make_token())
    script = 'echo "${MSI_ENDPOINT:+endpoint} ${MSI_SECRET:+secret} ${APPSETTING_WEBSITE_SITE_NAME:+site}"'
    result = run("--az-login", "--token-file", str(path), "--", "sh", "-c", script, env=az_env, timeout=180)
    assert result.returncode == 0, explain(result)
    expected = "endpoint secret site" if _release(az_version) < (2, 73) else ""
    assert result.stdout.strip() == expected


def test_a_cloud_shell_marker_does_not_send_az_down_cloud_shell_paths(az_env: dict[str, str], tmp_path: Path) -> None:
    """ACC_CLOUD (set in Azure Cloud Shell) makes az treat itself as in Cloud Shell: removed for az and COMMAND."""
    path = token_file(tmp_path, make_token())
    env = {**az_env, "ACC_CLOUD": "PROD"}
    script = 'az group list --query "[0].name" -o tsv && echo "ACC_CLOUD=${ACC_CLOUD-unset}"'
    result = run("--az-login", "--token-file", str(path), "--", "sh", "-c", script, env=env, timeout=180)
    assert (result.returncode, result.stdout.split()) == (0, ["rg-fake", "ACC_CLOUD=unset"]), explain(result)


def test_make_j4_under_one_login_runs_four_az_calls(az_env: dict[str, str], tmp_path: Path) -> None:
    """One --az-login around a whole make -j4: four recipes, four real az processes at once, all served."""
    (tmp_path / "Makefile").write_text("all: a b c d\na b c d:\n\taz group list --query '[0].name' -o tsv > $@.out\n")
    path = token_file(tmp_path, make_token())
    result = run(
        "--az-login", "--token-file", str(path), "--", "make", "-j4", "-C", str(tmp_path), env=az_env, timeout=300
    )
    assert result.returncode == 0, explain(result)
    assert [(tmp_path / f"{name}.out").read_text().strip() for name in "abcd"] == ["rg-fake"] * 4


def test_the_supported_range_is_the_tested_one() -> None:
    """--az-login names the range the suite proves: its oldest and newest az releases."""
    from azexec.parts import azlogin

    assert min(map(_release, AZ_VERSIONS)) == azlogin.OLDEST_AZ
    assert max(map(_release, AZ_VERSIONS)) == azlogin.NEWEST_AZ


FAILING_LOGIN = """case "$1" in
  login) echo "ERROR: Failed to connect to MSI. Get Token request returned http error: 403" >&2; exit 1;;
  version) echo '{{"azure-cli": "{version}", "azure-cli-core": "{version}"}}';;
esac
"""


@pytest.mark.parametrize("version", ["2.30.0", "2.99.0"], ids=["older", "newer"])
def test_an_az_outside_the_range_that_fails_gets_one_line_naming_both(tmp_path: Path, version: str) -> None:
    """An az outside the tested range whose login fails: one line, its version and the range, never its MSI error."""
    env = _fake_az(tmp_path, FAILING_LOGIN.format(version=version))
    path = token_file(tmp_path, make_token())
    result = run("--az-login", "--token-file", str(path), "--", "true", env=env, timeout=60)
    assert result.returncode == 125, explain(result)
    assert result.stderr == (
        f"azexec: --az-login: az {version} failed to log in; --az-login works with az 2.45.0 to 2.91.0;"
        " run an az in that range (azexec finds az on COMMAND's PATH)\n"
    )


def test_an_az_inside_the_range_that_fails_shows_its_own_error(tmp_path: Path) -> None:
    """Inside the range, az's own messages are the news: shown, then azexec's line."""
    env = _fake_az(tmp_path, FAILING_LOGIN.format(version="2.60.0"))
    path = token_file(tmp_path, make_token())
    result = run("--az-login", "--token-file", str(path), "--", "true", env=env, timeout=60)
    assert result.returncode == 125, explain(result)
    assert "http error: 403" in result.stderr
    assert result.stderr.endswith(
        "azexec: --az-login: az login --identity failed (status 1); see az's messages above\n"
    )


def _config_after(az_env: dict[str, str], tmp_path: Path, name: str, **extra: str) -> Path:
    """Run --az-login --subscription SECOND_SUBSCRIPTION; return a copy of the private directory COMMAND saw."""
    path = token_file(tmp_path, make_token())
    copy = tmp_path / name
    args = ["--az-login", "--subscription", SECOND_SUBSCRIPTION, "--token-file", str(path), "--"]
    result = run(*args, "sh", "-c", f'cp -r "$AZURE_CONFIG_DIR" {copy}', env={**az_env, **extra}, timeout=180)
    assert result.returncode == 0, explain(result)
    return copy


def test_azexec_writes_the_profile_az_login_and_account_set_write(az_env: dict[str, str], tmp_path: Path) -> None:
    """Without running az: azureProfile.json and clouds.config are byte for byte what the real az writes."""
    fast = _config_after(az_env, tmp_path, "fast")
    # A proxy setting makes azexec leave the login to az (it does not guess how az would use it); az itself
    # goes around the proxy for 127.0.0.1, so it logs in as it always did.
    proxied = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}
    by_az = _config_after(az_env, tmp_path, "by-az", **proxied)
    assert list(by_az.glob("commands/*login*")) != []  # the reference really ran az login …
    assert list(fast.glob("commands/*login*")) == []  # … and the fast path did not
    for name in ("azureProfile.json", "clouds.config"):
        assert (fast / name).read_bytes() == (by_az / name).read_bytes(), name


# azexec's own listing is the same whatever az runs after it: the newest release stands for all.
@pytest.mark.parametrize("az_version", [AZ_VERSIONS[0]])
@pytest.mark.parametrize(
    "listing",
    [b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"value": [' + b"{" * 50 + b"}" * 50 + b"]}"],
    ids=["100 000 deep", "50 deep"],
)
def test_a_hostile_listing_leaves_the_login_to_az(
    az_env: dict[str, str], arm: FakeArm, tmp_path: Path, listing: bytes
) -> None:
    """Resource Manager answers azexec's listing with JSON nested too deep: no traceback; az logs in as before."""
    arm.first_listings.append(listing)
    path = token_file(tmp_path, make_token())
    result = run("--az-login", "--token-file", str(path), "--", "az", "group", "list", env=az_env, timeout=180)
    assert result.returncode == 0, explain(result)
    assert "Traceback" not in result.stderr
    assert [group["name"] for group in json.loads(result.stdout)] == ["rg-fake"]
    assert arm.first_listings == []


@pytest.mark.parametrize("kind", ["a file", "a FIFO"])
def test_the_users_command_index_is_copied_when_it_is_a_file(tmp_path: Path, kind: str) -> None:
    """az's command index comes along (az before 2.73.0 rebuilds it for seconds otherwise); anything odd is skipped."""
    env = _fake_az(tmp_path, "exit 0\n")
    config = Path(env["AZURE_CONFIG_DIR"])
    config.mkdir()
    index = config / "commandIndex.json"
    if kind == "a file":
        index.write_text('{"version": "2.72.0", "cloudProfile": "latest", "commandIndex": {"group": ["m"]}}')
    else:
        os.mkfifo(index)
    path = token_file(tmp_path, make_token())
    script = 'cat "$AZURE_CONFIG_DIR/commandIndex.json" 2>/dev/null || echo none'
    result = run("--az-login", "--token-file", str(path), "--", "sh", "-c", script, env=env, timeout=60)
    assert result.returncode == 0, explain(result)
    assert result.stdout.strip() == (index.read_text() if kind == "a file" else "none")
