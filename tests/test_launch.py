"""Handing over to COMMAND: its environment, its pid, its exit status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import AZEXEC, SUBSCRIPTION, TENANT, base_env, explain, make_token, run, wait_until

from azexec.launch import child_environment

PRINT_ENV = (
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
    "if k.startswith(('AZURE_CLI_', 'CI_', 'KEEP'))}))"
)


def test_child_environment_sets_removes_and_keeps() -> None:
    """Set values replace, None values and removed names disappear, the rest is inherited."""
    parent = {"PATH": "/bin", "AZURE_CLI_SUBSCRIPTION_ID": "stale", "CI_TOKEN": "secret"}
    env = child_environment(
        parent, {"AZURE_CLI_ACCESS_TOKEN": "tok", "AZURE_CLI_SUBSCRIPTION_ID": None}, removed=["CI_TOKEN"]
    )
    assert env == {"PATH": "/bin", "AZURE_CLI_ACCESS_TOKEN": "tok"}
    assert parent["AZURE_CLI_SUBSCRIPTION_ID"] == "stale"


def test_exec_replaces_azexec_with_command(token: str) -> None:
    """On POSIX COMMAND runs in azexec's own process: the pid the caller started."""
    proc = subprocess.Popen(
        [AZEXEC, "--token-env", "CI_TOKEN", "--", sys.executable, "-c", "import os; print(os.getpid())"],
        env=base_env(CI_TOKEN=token),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert int(out) == proc.pid


def test_child_sees_the_variables_and_not_stale_ones(private_file: Callable[..., Path]) -> None:
    """The three variables are set; a stale parent subscription and the --token-env variable are removed."""
    tok = make_token()
    env = base_env(CI_TOKEN=tok, AZURE_CLI_SUBSCRIPTION_ID="stale", AZURE_CLI_TENANT_ID="stale", KEEP="1")
    result = run("--token-env", "CI_TOKEN", "--", sys.executable, "-c", PRINT_ENV, env=env)
    assert result.returncode == 0, explain(result)
    assert json.loads(result.stdout) == {
        "AZURE_CLI_ACCESS_TOKEN": tok,
        "AZURE_CLI_TENANT_ID": TENANT,
        "KEEP": "1",
    }


def test_child_gets_subscription_from_option(token: str) -> None:
    """--subscription reaches the child."""
    code = "import os; print(os.environ['AZURE_CLI_SUBSCRIPTION_ID'])"
    result = run(
        "--token-env", "T", "--subscription", SUBSCRIPTION, "--", sys.executable, "-c", code, env=base_env(T=token)
    )
    assert result.stdout.strip() == SUBSCRIPTION, explain(result)


@pytest.mark.parametrize("status", [0, 1, 42, 255])
def test_command_exit_status_is_azexecs(token: str, status: int) -> None:
    """COMMAND's status comes back unchanged."""
    result = run("--token-env", "T", "--", "sh", "-c", f"exit {status}", env=base_env(T=token))
    assert result.returncode == status, explain(result)
    assert result.stderr == ""


def test_command_killed_by_signal_is_seen_by_the_caller(token: str) -> None:
    """Exec leaves no parent in between: the caller sees death by the signal itself."""
    result = run("--token-env", "T", "--", "sh", "-c", "kill -KILL $$", env=base_env(T=token))
    assert result.returncode == -9, explain(result)


def test_command_not_found_is_127(token: str) -> None:
    """A missing COMMAND exits 127 with one line naming it."""
    result = run("--token-env", "T", "--", "azexec-no-such-command", env=base_env(T=token))
    assert result.returncode == 127, explain(result)
    assert (
        result.stderr
        == "azexec: azexec-no-such-command: command not found; install it, or check PATH and the spelling\n"
    )


@pytest.mark.parametrize(
    ("content", "mode"),
    [("#!/bin/sh\necho hi\n", 0o644), ("loop", 0o755), (None, 0o755)],
    ids=["not-executable", "symlink-loop", "directory"],
)
def test_command_not_executable_is_126(token: str, tmp_path: Path, content: str | None, mode: int) -> None:
    """Found but not executable (no x bit, a symlink loop, a directory) exits 126."""
    target = tmp_path / "cmd"
    if content is None:
        target.mkdir()
    elif content == "loop":
        target.symlink_to(target)
    else:
        target.write_text(content)
        target.chmod(mode)
    result = run("--token-env", "T", "--", str(target), env=base_env(T=token))
    assert result.returncode == 126, explain(result)
    assert result.stderr.startswith(f"azexec: {target}: ")
    assert len(result.stderr.splitlines()) == 1


def test_command_arguments_pass_through_untouched(token: str) -> None:
    """Options after COMMAND, even azexec's own names and a second --, are COMMAND's."""
    code = "import sys; print(sys.argv[1:])"
    args = ["--version", "--token-file", "x", "--", "-q", "--dry-run"]
    result = run("--token-env", "T", "--", sys.executable, "-c", code, *args, env=base_env(T=token))
    assert result.stdout.strip() == repr(args), explain(result)
    result = run("--token-env", "T", sys.executable, "-c", code, *args, env=base_env(T=token))
    assert result.stdout.strip() == repr(args), explain(result)


def test_command_on_path_of_the_child(token: str, tmp_path: Path) -> None:
    """COMMAND is looked up on PATH, as env(1) does."""
    script = tmp_path / "mytool"
    script.write_text('#!/bin/sh\necho "tool:$AZURE_CLI_TENANT_ID"\n')
    script.chmod(0o755)
    env = base_env(T=token, PATH=f"{tmp_path}:{base_env()['PATH']}")
    result = run("--token-env", "T", "mytool", env=env)
    assert result.stdout == f"tool:{TENANT}\n", explain(result)


def test_exec_mode_holds_nothing_while_command_runs(token: str) -> None:
    """While COMMAND runs, no Python interpreter is left in memory: the process is COMMAND alone."""
    proc = subprocess.Popen(
        [AZEXEC, "--token-env", "T", "--", "sleep", "30"], env=base_env(T=token), stdin=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes() == b"sleep\x0030\x00", what="the exec")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "python" not in maps.lower()
        assert Path(f"/proc/{proc.pid}/exe").resolve() == Path(shutil.which("sleep") or "").resolve()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("mode", ["", "--no-exec"], ids=["exec", "resident"])
def test_command_gets_default_sigpipe(token: str, mode: str) -> None:
    """Python ignores SIGPIPE; COMMAND must not inherit that, or `yes | head` would never end."""
    script = f'"{AZEXEC}" {mode} --token-env T -- yes | head -1; echo "status ${{PIPESTATUS[0]}}"'
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=base_env(T=token), timeout=30, check=False
    )
    assert result.stdout == "y\nstatus 141\n", result.stderr


@pytest.mark.parametrize("mode", [[], ["--no-exec"], ["--mask"]], ids=["exec", "no-exec", "mask"])
def test_a_script_without_shebang_runs_through_sh(token: str, tmp_path: Path, mode: list[str]) -> None:
    """execvp's ENOEXEC fallback, as env(1) and shells do: /bin/sh runs it, in exec and resident mode."""
    script = tmp_path / "script"
    script.write_text('echo "from sh: $1"\n')
    script.chmod(0o755)
    result = run(*mode, "--token-env", "T", "--", str(script), "arg", env=base_env(T=token))
    assert (result.returncode, result.stdout) == (0, "from sh: arg\n"), explain(result)


def test_a_command_name_too_long_exits_126(token: str) -> None:
    """ENAMETOOLONG is 'cannot execute' (126), as env(1) says, not azexec's own failure."""
    result = run("--token-env", "T", "--", "a" * 300, env=base_env(T=token))
    assert result.returncode == 126, explain(result)
    assert len(result.stderr.splitlines()) == 1


def exec_size(argv: list[str], env: dict[str, str]) -> int:
    """What execve(2) counts against ARG_MAX: the strings, the file name and one pointer each."""
    strings = sum(len(a.encode()) + 1 for a in argv) + sum(len(f"{k}={v}".encode()) + 1 for k, v in env.items())
    return strings + len(argv[0].encode()) + 1 + 8 * (len(argv) + len(env))


@pytest.mark.parametrize("mode", [[], ["--no-exec"]], ids=["exec", "resident"])
def test_an_environment_too_big_for_exec_exits_126(token: str, mode: list[str]) -> None:
    """Near ARG_MAX, the token's variables tip COMMAND's exec into E2BIG: 126 with a one-line reason."""
    argv = [AZEXEC, *mode, "--token-stdin", "--", "true"]
    env = base_env()
    # azexec starts 300 bytes under the limit; the token's variables (~800 bytes) take COMMAND over it.
    room = os.sysconf("SC_ARG_MAX") - 300 - exec_size(argv, env)
    chunk = 100_000  # under the kernel's per-string limit (128 KiB)
    index = 0
    while room > 0:
        value = "x" * max(1, min(chunk, room - 20))
        env[f"FILL{index:04d}"] = value
        room -= len(value) + len(f"FILL{index:04d}=") + 1 + 8
        index += 1
    result = run(*argv[1:], env=env, input=token)
    assert result.returncode == 126, explain(result)
    assert "too long" in result.stderr


def test_dry_run_predicts_an_empty_path_as_the_current_directory(token: str, tmp_path: Path) -> None:
    """PATH="" searches the current directory, for exec and for --dry-run alike."""
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    env = base_env(T=token, PATH="")
    dry = run("--dry-run", "--token-env", "T", "--", "tool", env=env, cwd=tmp_path)
    assert f"  found at: {tool.name}" in dry.stdout, explain(dry)
    real = run("--token-env", "T", "--", "tool", env=env, cwd=tmp_path)
    assert (real.returncode, real.stdout) == (0, "ran\n"), explain(real)


def test_dry_run_predicts_126_for_a_file_that_is_not_executable(token: str, tmp_path: Path) -> None:
    """A file found but without the x bit: --dry-run says running it would exit 126."""
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\n")
    result = run("--dry-run", "--token-env", "T", "--", str(tool), env=base_env(T=token))
    assert f"  {tool} is at {tool} but is not executable: running it would exit 126" in result.stdout
