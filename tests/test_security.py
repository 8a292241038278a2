"""The security promises, tested as an auditor would: nothing on disk, in argv, or printed.

Run in CI every time; strace comes from .ci/run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from helpers import AZEXEC, TENANT, all_gone, base_env, explain, make_token, run, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azexec.cli import cli

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------- helpers


def secret_windows(token: str, width: int = 12) -> set[str]:
    """Every WIDTH-character piece of the token's payload and signature segments."""
    pieces = set()
    for segment in token.split(".")[1:3]:
        pieces |= {segment[i : i + width] for i in range(max(1, len(segment) - width + 1))}
    return {p for p in pieces if len(p) == width}


def assert_no_leak(token: str, *outputs: str) -> None:
    """Neither the payload nor the signature, nor any 12-character piece of them, was printed."""
    text = "".join(outputs)
    leaked = sorted(piece for piece in secret_windows(token) if piece in text)
    assert not leaked, f"token material printed: {leaked[:3]}"


# ---------------------------------------------------------------- nothing on disk

WRITE_CALLS = re.compile(
    r"\b(creat|rename|renameat2?|link|linkat|symlink|symlinkat|unlink|unlinkat|truncate|ftruncate|mkdir|mkdirat|rmdir|mknod|mknodat)\("
)
OPEN_CALL = re.compile(r"\bopen(?:at|at2)?\((?:AT_FDCWD|\d+)?,?\s*\"([^\"]*)\",\s*([A-Z_|]+)")
#: Opening these read-write touches no disk.
DEVICES = {"/dev/null", "/dev/tty"}


def disk_writes(strace_log: Path) -> list[str]:
    """Return every syscall in STRACE_LOG that writes, creates, renames, links, truncates or deletes."""
    found = []
    for line in strace_log.read_text().splitlines():
        if WRITE_CALLS.search(line) and "= -1 " not in line:
            found.append(line)
            continue
        match = OPEN_CALL.search(line)
        writes = match and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", match.group(2))
        if match and writes and match.group(1) not in DEVICES:
            found.append(line)
    return found


def traced(tmp_path: Path, *args: str, env: dict[str, str] | None = None, input: str = "") -> list[str]:
    """Run azexec under strace -f (after a warm-up run) and return the syscalls that touched the disk."""
    warm = run(*args, env=env, input=input)
    assert warm.returncode == 0, explain(warm)
    log = tmp_path / "strace.log"
    result = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(log), "-e", "trace=%file,%desc", AZEXEC, *args],
        input=input.encode(),
        capture_output=True,
        env=env if env is not None else base_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "execve(" in log.read_text()
    return disk_writes(log)


@pytest.fixture
def sources(tmp_path: Path, private_file: Callable[..., Path]) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """Each token source: (azexec options, environment, stdin)."""
    tok = make_token()
    path = private_file(tok)
    env_file = private_file(f"AZURE_CLI_ACCESS_TOKEN={tok}\n", name="azure.env")
    return {
        "stdin": (["--token-stdin"], base_env(), tok),
        "file": (["--token-file", str(path)], base_env(), ""),
        "env-file": (["--env-file", str(env_file)], base_env(), ""),
        "command": (["--token-cmd", f"cat {path}"], base_env(), ""),
        "variable": (["--token-env", "CI_TOKEN"], base_env(CI_TOKEN=tok), ""),
        "variable set by AZEXEC_TOKEN_ENV": ([], base_env(CI_TOKEN=tok, AZEXEC_TOKEN_ENV="CI_TOKEN"), ""),
    }


@pytest.mark.parametrize("source", ["stdin", "file", "env-file", "command", "variable"])
@pytest.mark.parametrize(
    "mode", [[], ["--no-exec"], ["--mask"], ["--dry-run"]], ids=["exec", "no-exec", "mask", "dry-run"]
)
def test_nothing_is_written_to_disk(
    tmp_path: Path, sources: dict[str, tuple[list[str], dict[str, str], str]], source: str, mode: list[str]
) -> None:
    """strace -f sees no write-open, create, rename, link, truncate or delete, for any source or mode."""
    options, env, stdin = sources[source]
    writes = traced(tmp_path, "-q", *mode, *options, "--", "true", env=env, input=stdin)
    assert writes == []


def test_the_strace_check_can_fail(tmp_path: Path) -> None:
    """The checker itself sees a write: a command that creates a file is caught."""
    log = tmp_path / "strace.log"
    subprocess.run(
        ["strace", "-f", "-qq", "-o", str(log), "-e", "trace=%file,%desc", "touch", str(tmp_path / "x")], check=True
    )
    assert disk_writes(log)


# ---------------------------------------------------------------- nothing in argv


@pytest.mark.parametrize("mode", [[], ["--no-exec"], ["--mask"]], ids=["exec", "no-exec", "mask"])
def test_token_never_appears_in_any_process_argv(private_file: Callable[..., Path], mode: list[str]) -> None:
    """While a slow token command and then COMMAND run, no /proc/PID/cmdline holds the token."""
    tok = make_token()
    path = private_file(tok)
    seen: set[str] = set()
    leaks: list[str] = []
    stop = threading.Event()

    def scan() -> None:
        while not stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if "azexec-argv-probe" in cmdline:
                    seen.add(cmdline.split("\0")[0])
                if tok in cmdline or any(piece in cmdline for piece in list(secret_windows(tok, 40))[:5]):
                    leaks.append(cmdline)
            time.sleep(0.01)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        token_cmd = f"sh -c 'sleep 0.5; cat {path}' azexec-argv-probe"
        result = run(*mode, "--token-cmd", token_cmd, "--", "sh", "-c", "sleep 0.5", "azexec-argv-probe")
        assert result.returncode == 0, explain(result)
    finally:
        stop.set()
        scanner.join()
    assert seen, "the scan never saw the processes it watches"
    assert leaks == []


# ---------------------------------------------------------------- nothing printed

GOOD = make_token(aud="https://management.azure.com/", tid=TENANT)
HEADER, PAYLOAD, SIGNATURE = GOOD.split(".")
HOSTILE = {
    "truncated": GOOD[: len(GOOD) // 2],
    "two tokens": GOOD + "\n" + GOOD,
    "two tokens, space": GOOD + " " + GOOD,
    "trailing junk": GOOD + "!!junk",
    "missing segment": f"{HEADER}.{PAYLOAD}",
    "extra segment": f"{GOOD}.{SIGNATURE}",
    "bad base64": f"{HEADER}.{PAYLOAD[:-3]}@@@.{SIGNATURE}",
    "NUL byte": GOOD[:100] + "\0" + GOOD[100:],
    "BOM inside": GOOD[:50] + "\ufeff" + GOOD[50:],
    "zero-width space": GOOD[:80] + "\u200b" + GOOD[80:],
    "Bearer prefix": "Bearer " + GOOD,
    "reversed": GOOD[::-1],
    "JSON, wrong key": json.dumps({"token": GOOD, "tenant": TENANT}),
    "JSON, non-string": json.dumps({"accessToken": [GOOD]}),
    "JSON, unterminated": json.dumps({"accessToken": GOOD})[:-2],
    "JSON, space inside": json.dumps({"accessToken": GOOD[:60] + " " + GOOD[60:]}),
    "JSON, number": json.dumps({"accessToken": 12345}),
    "expired": make_token(lifetime=-60),
    "payload not JSON": f"{HEADER}.{base64.urlsafe_b64encode(PAYLOAD.encode()).decode().rstrip('=')}.{SIGNATURE}",
}
MODES = {
    "run": [],
    "no-verify": ["--no-verify"],
    "dry-run": ["--dry-run"],
    "dry-run no-verify": ["--dry-run", "--no-verify"],
    "dry-run json": ["--dry-run", "--json"],
    "dry-run json no-verify": ["--dry-run", "--json", "--no-verify"],
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_inputs_never_print_the_token(private_file: Callable[..., Path], case: str) -> None:
    """Every hostile input, in every mode: exit 0 or 125, no traceback, no token material printed."""
    path = private_file(HOSTILE[case])
    for mode, options in MODES.items():
        result = run(*options, "--token-file", str(path), "--", "true")
        assert result.returncode in (0, 125), f"{mode}: {explain(result)}"
        assert "Traceback" not in result.stderr, f"{mode}: {result.stderr}"
        assert_no_leak(GOOD, result.stdout, result.stderr)


def mutate(token: str, data: st.DataObject) -> str:
    """Damage TOKEN the ways sources get damaged: cut, spliced, wrapped, reversed."""
    how = data.draw(st.sampled_from(["cut", "insert", "replace", "wrap", "reverse", "json"]))
    i = data.draw(st.integers(min_value=0, max_value=len(token)))
    junk = data.draw(st.text(max_size=8))
    if how == "cut":
        return token[:i]
    if how == "insert":
        return token[:i] + junk + token[i:]
    if how == "replace":
        return token[:i] + junk + token[i + len(junk) :]
    if how == "wrap":
        return junk + token + junk
    if how == "reverse":
        return token[::-1]
    key = data.draw(st.sampled_from(["accessToken", "access_token", "token", "AccessToken"]))
    value = data.draw(st.sampled_from([token, token[:i] + junk + token[i:], [token], None, 7]))
    return json.dumps({key: value})[: data.draw(st.integers(min_value=1, max_value=len(token) + 40))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_tokens_never_print_the_token(data: st.DataObject) -> None:
    """Property: however a token or its JSON is damaged, dry-run output and errors hold none of it."""
    text = mutate(GOOD, data)
    options = data.draw(st.sampled_from(list(MODES.values())[2:]))
    result = CliRunner().invoke(cli, [*options, "--token-stdin", "--", "true"], input=text)
    assert result.exit_code in (0, 125), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_no_leak(GOOD, result.output)


# ---------------------------------------------------------------- token command abuse


def test_token_cmd_that_prints_the_token_then_fails(private_file: Callable[..., Path]) -> None:
    """Its output is never echoed in the error."""
    path = private_file(GOOD)
    result = run("--token-cmd", f"sh -c 'cat {path}; exit 1'", "--", "true")
    assert result.returncode == 125
    assert_no_leak(GOOD, result.stdout, result.stderr)


def test_token_cmd_that_prints_binary() -> None:
    """Random bytes are refused without being shown."""
    result = run("--token-cmd", "head -c 4096 /dev/urandom", "--", "true")
    assert result.returncode == 125
    assert result.stderr == "azexec: --token-cmd is not UTF-8 text; it should hold the access token\n"


#: Runs ARGV and reports its exit status and peak RSS. A child's peak RSS starts at
#: its parent's (fork copies the address space), so measure from this small process,
#: not from pytest's large one.
MEASURE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def test_token_cmd_that_prints_endlessly_is_bounded() -> None:
    """cat /dev/zero: refused after 1 MiB, quickly, in bounded memory."""
    started = time.monotonic()
    result = run("--token-cmd", "cat /dev/zero", "--", "true")
    assert result.returncode == 125
    assert "output holds more than 1 MiB" in result.stderr
    assert time.monotonic() - started < 20
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, AZEXEC, "--token-cmd", "cat /dev/zero", "--", "true"],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
        check=True,
    )
    status, peak_kib = (int(n) for n in measured.stdout.split())
    assert status == 125
    assert peak_kib < 64 * 1024  # an unbounded read of /dev/zero would grow without end


def test_token_cmd_that_hangs_with_a_background_child(tmp_path: Path) -> None:
    """After the timeout neither the command nor the child it started survives."""
    pids = tmp_path / "pids"
    cmd = f"sh -c 'sleep 300 & echo $! > {pids}; echo $$ >> {pids}; wait'"
    result = run("--token-cmd", cmd, "--token-cmd-timeout", "1", "--", "true")
    assert result.returncode == 125
    assert "did not finish within 1s and was killed" in result.stderr
    numbers = [int(p) for p in pids.read_text().split()]
    assert len(numbers) == 2
    assert all_gone(numbers)


# ---------------------------------------------------------------- files


def test_file_errors(tmp_path: Path) -> None:
    """A missing path and a directory are one-line 125s."""
    missing = run("--token-file", str(tmp_path / "nope"), "--", "true")
    assert (missing.returncode, missing.stderr) == (
        125,
        f"azexec: --token-file {tmp_path / 'nope'}: no such file; check the path\n",
    )
    directory = run("--token-file", str(tmp_path), "--", "true")
    assert directory.returncode == 125
    assert "is a directory" in directory.stderr


def test_unreadable_file(private_file: Callable[..., Path]) -> None:
    """A file azexec may not read is a clear 125 (as root, run without the capabilities that bypass modes)."""
    path = private_file(GOOD)
    path.chmod(0)
    argv = [AZEXEC, "--token-file", str(path), "--", "true"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, env=base_env(), timeout=30, check=False)
    assert result.returncode == 125, result.stderr
    assert result.stderr == f"azexec: --token-file {path}: permission denied; check the file's owner and mode\n"


def test_world_readable_file_and_symlink_are_warned(private_file: Callable[..., Path], tmp_path: Path) -> None:
    """Others can read it: warn, directly or through a link, and still run."""
    path = private_file(GOOD)
    path.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(path)
    for target in (path, link):
        result = run("--token-file", str(target), "--", "true")
        assert result.returncode == 0
        assert (
            result.stderr
            == f"azexec: warning: {target} is readable by other users (mode 0644); run: chmod 600 {target}\n"
        )


def test_fifo_and_process_substitution_are_not_warned(private_file: Callable[..., Path], tmp_path: Path) -> None:
    """Pipes are private by nature: they work and are not warned about."""
    path = private_file(GOOD)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o666)
    writer = subprocess.Popen(["sh", "-c", f"cat {path} > {fifo}"])
    result = run("--token-file", str(fifo), "--", "printenv", "AZURE_CLI_TENANT_ID")
    writer.wait(timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{TENANT}\n", "")
    script = f'"{AZEXEC}" --token-file <(cat {path}) -- printenv AZURE_CLI_TENANT_ID'
    substituted = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=base_env(), timeout=30, check=False
    )
    assert (substituted.returncode, substituted.stdout, substituted.stderr) == (0, f"{TENANT}\n", "")


# ---------------------------------------------------------------- environment hygiene

DUMP_ENV = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]


@pytest.mark.parametrize(
    "source", ["stdin", "file", "env-file", "command", "variable", "variable set by AZEXEC_TOKEN_ENV"]
)
def test_child_environment_holds_the_token_once_and_nothing_stale(
    sources: dict[str, tuple[list[str], dict[str, str], str]], source: str
) -> None:
    """Stale AZURE_CLI_* values never reach COMMAND; the token is in AZURE_CLI_ACCESS_TOKEN and nowhere else."""
    options, env, stdin = sources[source]
    env = {
        **env,
        "AZURE_CLI_ACCESS_TOKEN": "stale-token",
        "AZURE_CLI_SUBSCRIPTION_ID": "00000000-0000-4000-8000-00000000dead",
        "AZURE_CLI_TENANT_ID": "stale",
    }
    result = run("-q", *options, "--", *DUMP_ENV, env=env, input=stdin)
    assert result.returncode == 0, explain(result)
    child = json.loads(result.stdout)
    token = child["AZURE_CLI_ACCESS_TOKEN"]
    assert token != "stale-token"
    assert "AZURE_CLI_SUBSCRIPTION_ID" not in child
    assert child["AZURE_CLI_TENANT_ID"] == TENANT
    assert [name for name, value in child.items() if token in value] == ["AZURE_CLI_ACCESS_TOKEN"]
    assert "CI_TOKEN" not in child


def test_resident_azexec_does_not_hold_the_token_in_its_own_environment(private_file: Callable[..., Path]) -> None:
    """In resident mode /proc/PID/environ and cmdline of azexec itself hold no token (only COMMAND's do)."""
    path = private_file(GOOD)
    proc = subprocess.Popen(
        [AZEXEC, "--no-exec", "--token-file", str(path), "--", "sleep", "30"], env=base_env(), stdin=subprocess.DEVNULL
    )
    try:
        _wait_for_child(proc.pid)
        for name in ("environ", "cmdline"):
            assert GOOD.encode() not in Path(f"/proc/{proc.pid}/{name}").read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _parent(entry: Path) -> int:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_core_dumps_are_off_when_dying_of_a_signal(tmp_path: Path) -> None:
    """Re-raising SIGQUIT in resident mode leaves no core file of azexec, whose memory holds the token."""
    # azexec may dump core (ulimit -c unlimited); COMMAND turns its own core dumps off.
    command = "ulimit -c 0; kill -QUIT $$"
    script = f'ulimit -c unlimited; exec "{AZEXEC}" --no-exec --token-env T -- sh -c "$0"'
    result = subprocess.run(
        ["sh", "-c", script, command], cwd=tmp_path, env=base_env(T=GOOD), capture_output=True, timeout=30, check=False
    )
    assert result.returncode == -signal.SIGQUIT, result.stderr
    assert list(tmp_path.iterdir()) == []


def _wait_for_child(pid: int, within: float = 20) -> None:
    """Return once PID has a child (its token command has started)."""
    wait_until(
        lambda: [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid],
        within=within,
        what=f"a child of {pid}",
    )


@pytest.mark.parametrize("name", ["SIGQUIT", "SIGABRT"])
def test_no_core_dump_while_a_token_command_runs(tmp_path: Path, name: str) -> None:
    """A signal that dumps core, sent while --token-cmd runs, leaves no core file of azexec (it holds a secret)."""
    script = f'ulimit -c unlimited; exec "{AZEXEC}" --token-cmd "sleep 30" -- true'
    proc = subprocess.Popen(["sh", "-c", script], cwd=tmp_path, env=base_env(CI_SECRET=GOOD), stderr=subprocess.PIPE)
    try:
        _wait_for_child(proc.pid)
        proc.send_signal(getattr(signal, name))
        assert proc.wait(timeout=20) == -getattr(signal, name)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", [[], ["--no-exec"]], ids=["exec", "resident"])
def test_command_keeps_the_callers_core_limit(mode: list[str]) -> None:
    """azexec turns core dumps off for itself only: COMMAND sees the caller's `ulimit -c`."""
    script = f'ulimit -c unlimited; exec "{AZEXEC}" {" ".join(mode)} --token-env T -- sh -c "ulimit -c"'
    result = subprocess.run(
        ["sh", "-c", script], env=base_env(T=GOOD), capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout) == (0, "unlimited\n"), result.stderr


# ---------------------------------------------------------------- misplaced tokens

#: Tokens where a name, path, ID, duration or command belongs: a JWT, and an opaque secret.
MISPLACED = {"jwt": GOOD, "opaque": "Zq3" + "x7Kp9" * 12 + "Wm2"}
#: Options that take a value, with what else the run needs.
VALUE_OPTIONS = {
    "--token-env": [],
    "--token-file": [],
    "--env-file": [],
    "--token-cmd": [],
    "--subscription": ["--token-env", "GOOD"],
    "--tenant": ["--token-env", "GOOD"],
    "--min-validity": ["--token-env", "GOOD"],
    "--token-cmd-timeout": ["--token-env", "GOOD"],
    "--audience": ["--token-env", "GOOD"],
}


def assert_not_printed(secret: str, *outputs: str) -> None:
    """SECRET, and any 12-character piece of it, appears in no output."""
    text = "".join(outputs)
    pieces = {secret[i : i + 12] for i in range(len(secret) - 11)}
    assert not [p for p in pieces if p in text], f"secret material printed: {text[:300]}"


@pytest.mark.parametrize("kind", list(MISPLACED))
@pytest.mark.parametrize("option", list(VALUE_OPTIONS))
def test_a_token_given_to_any_option_is_never_printed(option: str, kind: str) -> None:
    """A token typed where a value of another kind belongs fails without echoing it; its fingerprint is shown."""
    secret = MISPLACED[kind]
    result = run(option, secret, *VALUE_OPTIONS[option], "--", "true", env=base_env(GOOD=make_token()))
    assert result.returncode in (2, 125), explain(result)
    assert "Traceback" not in result.stderr
    assert_not_printed(secret, result.stdout, result.stderr)
    assert "<redacted: " in result.stderr


@pytest.mark.parametrize("kind", list(MISPLACED))
@pytest.mark.parametrize("option", list(VALUE_OPTIONS))
def test_a_token_in_any_azexec_variable_is_never_printed(option: str, kind: str) -> None:
    """The same through the option's AZEXEC_* variable."""
    secret = MISPLACED[kind]
    variable = "AZEXEC_" + option[2:].upper().replace("-", "_")
    env = base_env(GOOD=make_token(), **{variable: secret})
    result = run(*VALUE_OPTIONS[option], "--", "true", env=env)
    assert result.returncode in (2, 125), explain(result)
    assert "Traceback" not in result.stderr
    assert_not_printed(secret, result.stdout, result.stderr)


@pytest.mark.parametrize("kind", list(MISPLACED))
@pytest.mark.parametrize("mode", [[], ["--no-exec"], ["--mask"], ["--dry-run"], ["--dry-run", "--json"]], ids=str)
def test_a_token_given_as_command_is_never_printed(mode: list[str], kind: str) -> None:
    """COMMAND that is a token: a usage error (2) without echoing it, in every mode, --dry-run's too."""
    secret = MISPLACED[kind]
    result = run(*mode, "--token-env", "GOOD", "--", secret, "arg", env=base_env(GOOD=make_token()))
    assert result.returncode == 2, explain(result)
    assert_not_printed(secret, result.stdout, result.stderr)
    assert "<redacted: " in result.stdout + result.stderr


# ---------------------------------------------------------------- claims are untrusted

ESCAPES = "\x1b]0;pwned\x07\x1b[31m\u202e\x9b"


@pytest.mark.parametrize("tid", [f"{TENANT}\n", f"{TENANT} x", f"\x1b]0;{TENANT}\x07", "\0", "\udc80", "contoso.com"])
def test_a_tid_that_is_not_a_guid_is_refused(tid: str) -> None:
    """tid becomes AZURE_CLI_TENANT_ID: anything but a GUID is a one-line 125, shown escaped."""
    result = run("--token-env", "T", "--", "true", env=base_env(T=make_token(tid=tid)))
    assert result.returncode == 125, explain(result)
    assert "tenant (tid claim) that is not a GUID" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "\x1b" not in result.stderr
    assert "\0" not in result.stderr


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_dry_run_escapes_every_claim(json_output: bool) -> None:
    """A forged token cannot write terminal escape sequences through --dry-run, even piped."""
    tok = make_token(upn=f"alice{ESCAPES}", aud=f"https://evil{ESCAPES}", appid=ESCAPES, roles=[ESCAPES], scp=ESCAPES)
    options = ["--dry-run", "--json"] if json_output else ["--dry-run"]
    result = run(*options, "--token-env", "T", "--", "true", env=base_env(T=tok))
    assert result.returncode == 0, explain(result)
    for char in "\x1b\x07\u202e\x9b":
        assert char not in result.stdout + result.stderr
    assert "alice" in result.stdout


CLAIM_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(alphabet=st.characters(codec=None), max_size=40),
    st.lists(st.text(max_size=5), max_size=3),
    st.none(),
    st.booleans(),
)


def raw_token(payload: dict[str, object]) -> str:
    """Encode PAYLOAD as a JWT whatever it holds (pyjwt's encoder refuses odd claims)."""

    def part(data: object) -> str:
        text = json.dumps(data, allow_nan=True).encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(text).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.{SIGNATURE}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim=st.sampled_from(["exp", "nbf", "tid", "aud", "upn", "appid", "roles", "scp", "iss"]), value=CLAIM_VALUES)
def test_any_claim_value_gives_a_clean_answer(claim: str, value: object) -> None:
    """Property: NaN, huge, control characters, surrogates in any claim: exit 0 or 125, no traceback, no raw escape."""
    tok = raw_token({**jwt.decode(GOOD, options={"verify_signature": False}), claim: value})
    for options in (["--dry-run"], ["--dry-run", "--json"]):
        result = CliRunner().invoke(cli, [*options, "--token-stdin", "--", "true"], input=tok)
        assert result.exit_code in (0, 125), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert "\x1b" not in result.output
        assert_no_leak(tok, result.output)


# ---------------------------------------------------------------- no bytecode


def test_an_install_without_bytecode_writes_none(tmp_path: Path, private_file: Callable[..., Path]) -> None:
    """`pip install --no-compile`: running azexec writes no .pyc, of its own or of its dependencies."""
    root = Path(__file__).resolve().parent.parent
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-compile", str(root)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    before = set(venv.rglob("*.pyc"))
    env = {k: v for k, v in base_env(T=GOOD).items() if k != "PYTHONDONTWRITEBYTECODE"}
    for args in (["--token-env", "T", "--", "true"], ["--dry-run", "--token-env", "T", "--", "true"]):
        result = subprocess.run([str(venv / "bin" / "azexec"), *args], env=env, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert set(venv.rglob("*.pyc")) == before


@pytest.mark.parametrize("kind", list(MISPLACED))
@pytest.mark.parametrize(
    ("where", "said"),
    [
        (["--token-env", "{secret}"], "--token-env {r} looks like a token, not a variable name"),
        (["--token-file", "{secret}"], "--token-file {r} looks like a token, not a path"),
        (["--env-file", "{secret}"], "--env-file {r} looks like a token, not a path"),
        (["--token-cmd", "{secret}"], "--token-cmd {r} looks like a token, not a command"),
        (["--token-env", "GOOD", "--audience", "{secret}"], "--audience {r} looks like a token, not an audience"),
        (["--token-env", "GOOD", "--subscription", "{secret}"],
         "Invalid value for '--subscription': {r} looks like a token, not a subscription ID"),
        (["--token-env", "GOOD", "--tenant", "{secret}"],
         "Invalid value for '--tenant': {r} looks like a token, not a tenant"),
        (["--token-env", "GOOD", "--min-validity", "{secret}"],
         "Invalid value for '--min-validity': {r} looks like a token, not a duration"),
        (["--token-env", "GOOD", "--identity-server", "--listen", "{secret}"],
         "Invalid value for '--listen': {r} looks like a token, not an address"),
        (["--token-env", "GOOD", "--", "{secret}"], "COMMAND {r} looks like a token, not a command"),
    ],
    ids=["variable name", "path", "env file", "token command", "audience", "subscription", "tenant", "duration",
         "address", "COMMAND"],
)  # fmt: skip
def test_a_misplaced_token_is_named_as_such(where: list[str], said: str, kind: str) -> None:
    """Wherever a value of another kind belongs, a token is called a token, with the way out (--token-stdin), and
    it is a usage error: exit 2, the same status wherever it was typed."""
    import hashlib

    secret = MISPLACED[kind]
    args = [arg.replace("{secret}", secret) for arg in where]
    if "--" not in args:
        args += ["--", "true"]
    result = run(*args, env=base_env(GOOD=make_token()))
    digest = hashlib.sha256(secret.encode()).hexdigest()[:12]
    redacted = f"<redacted: {len(secret)} chars, sha256 {digest}>"
    assert result.returncode == 2, explain(result)
    assert result.stderr.startswith("azexec: " + said.format(r=redacted)), explain(result)
    assert "--token-stdin" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "export it" not in result.stderr
    assert "too long" not in result.stderr
