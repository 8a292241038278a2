"""Resident mode (--no-exec, --mask): signals, exit status, masking and the expiry watch, for real."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import AZEXEC, Terminal, all_gone, base_env, explain, make_token, run, wait_until

pytestmark = pytest.mark.slow

#: A child that records the signals it gets, and exits with a code when it gets the last one named.
#: On the last signal it waits for release() before exiting: a handler that takes its time.
TRAPPER = """
import os, signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
names, last, code = sys.argv[2].split(","), sys.argv[2].split(",")[-1], int(sys.argv[3])
os.mkfifo(sys.argv[1] + ".release")
def handler(number, frame):
    name = signal.Signals(number).name
    log.write(name + "\\n")
    if name == last:
        log.write("waiting\\n")
        open(sys.argv[1] + ".release").read()  # until the test opens the FIFO and closes it
        log.write("exiting\\n")
        sys.exit(code)
for name in names:
    signal.signal(getattr(signal, name), handler)
log.write("ready\\n")
# Not signal.pause(): a signal landing just before it is handled only when another comes (pause's race).
while True:
    time.sleep(0.1)
"""


def wait_for(path: Path, text: str, timeout: float = 20) -> None:
    """Return once TEXT is in the file PATH (which a child writes)."""
    wait_until(lambda: text in (path.read_text() if path.exists() else ""), within=timeout, what=f"{text!r} in {path}")


def release(log: Path) -> None:
    """Let the trapper's last handler finish."""
    with open(f"{log}.release", "w"):
        pass


@pytest.fixture
def trapper(tmp_path: Path) -> Path:
    script = tmp_path / "trapper.py"
    script.write_text(TRAPPER)
    return script


def test_signals_sent_to_azexec_reach_command_once(tmp_path: Path, trapper: Path, token: str) -> None:
    """HUP, USR1, USR2, QUIT, WINCH, INT, then TERM: each forwarded once; COMMAND's exit code comes back."""
    log = tmp_path / "log"
    names = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGWINCH", "SIGINT", "SIGTERM"]
    proc = subprocess.Popen(
        [AZEXEC, "--no-exec", "--token-env", "T", "--", sys.executable, str(trapper), str(log), ",".join(names), "42"],
        env=base_env(T=token),
        stdin=subprocess.DEVNULL,
        # No terminal: INT, QUIT and WINCH then come from kill alone, wherever the suite runs.
        start_new_session=True,
    )
    try:
        wait_for(log, "ready")
        for name in names:
            proc.send_signal(getattr(signal, name))
            wait_for(log, name)
        wait_for(log, "waiting")
        # The child's TERM handler has not finished: azexec must still be there, waiting for it.
        assert proc.poll() is None
        release(log)
        assert proc.wait(timeout=20) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert log.read_text().split() == ["ready", *names, "waiting", "exiting"]


@pytest.mark.parametrize("status", [0, 1, 42, 255])
def test_exit_status_is_passed_on_unchanged(token: str, status: int) -> None:
    """COMMAND's status is azexec's, never flattened."""
    result = run("--no-exec", "--token-env", "T", "--", "sh", "-c", f"exit {status}", env=base_env(T=token))
    assert result.returncode == status, explain(result)


@pytest.mark.parametrize("name", ["SIGKILL", "SIGTERM", "SIGQUIT"])
def test_death_by_signal_is_re_raised(token: str, tmp_path: Path, name: str) -> None:
    """COMMAND killed by signal N: azexec dies of N too, as exec would show, and leaves no core file."""
    result = run(
        "--no-exec", "--token-env", "T", "--", "sh", "-c", f"kill -{name[3:]} $$", env=base_env(T=token), cwd=tmp_path
    )
    assert result.returncode == -getattr(signal, name), explain(result)
    assert list(tmp_path.iterdir()) == []


def test_resident_not_found_and_not_executable(token: str, tmp_path: Path) -> None:
    """127 and 126 as in exec mode."""
    assert run("--no-exec", "--token-env", "T", "--", "azexec-no-such", env=base_env(T=token)).returncode == 127
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    assert run("--no-exec", "--token-env", "T", "--", str(script), env=base_env(T=token)).returncode == 126


def test_resident_command_gets_the_environment(token: str) -> None:
    """The child's environment is as in exec mode: the token set, the --token-env variable gone."""
    result = run(
        "--no-exec",
        "--token-env",
        "T",
        "--",
        "sh",
        "-c",
        'test -z "$T" && printenv AZURE_CLI_ACCESS_TOKEN',
        env=base_env(T=token),
    )
    assert result.stdout == token + "\n", explain(result)


def test_ctrl_c_at_a_terminal_reaches_command_once(
    terminal: Callable[..., Terminal], tmp_path: Path, trapper: Path
) -> None:
    """A terminal's Ctrl-C goes to the whole foreground group; azexec must not deliver it a second time."""
    log = tmp_path / "log"
    term = terminal(
        ["--no-exec", "--token-env", "T", "--", sys.executable, str(trapper), str(log), "SIGUSR1,SIGINT", "130"],
        base_env(T=make_token()),
    )
    wait_for(log, "ready")
    term.send("\x03")
    wait_for(log, "waiting")
    release(log)
    assert term.finish() == 130
    assert log.read_text().split() == ["ready", "SIGINT", "waiting", "exiting"]


#: Writes the token whole, on stderr, and split in two writes, the second only once the test has seen
#: what the first let through (so the two halves reach azexec in two reads).
MASK_CHILD = """
import os, sys
token = os.environ["AZURE_CLI_ACCESS_TOKEN"]
print("whole:", token, flush=True)
print("on stderr:", token, file=sys.stderr, flush=True)
half = len(token) // 2
sys.stdout.write("split:" + token[:half]); sys.stdout.flush()
sys.stdin.readline()
sys.stdout.write(token[half:] + ":end\\n"); sys.stdout.flush()
"""


def test_mask_replaces_the_token_on_stdout_and_stderr(token: str) -> None:
    """Whole, split across two writes, on stdout and on stderr: every occurrence becomes ***."""
    proc = subprocess.Popen(
        [AZEXEC, "--mask", "--token-env", "T", "--", sys.executable, "-c", MASK_CHILD],
        env=base_env(T=token),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        seen = b""
        while b"split:" not in seen:  # passed on before the second half is written
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert (seen + out).decode() == "whole: ***\nsplit:***:end\n"
    assert err.decode() == "on stderr: ***\n"


def test_mask_passes_lines_on_promptly(token: str) -> None:
    """A line COMMAND prints appears while COMMAND still runs, not at its exit."""
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(30)"
    proc = subprocess.Popen(
        [AZEXEC, "--mask", "--token-env", "T", "--", sys.executable, "-c", code],
        env=base_env(T=token),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    child = None
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert proc.poll() is None
    finally:
        proc.terminate()  # forwarded: COMMAND goes with azexec
        proc.wait(timeout=20)
        assert proc.stdout is not None
        proc.stdout.close()
    assert child is not None
    assert all_gone([child])


def test_mask_keeps_the_exit_status_and_forwards_signals(token: str) -> None:
    """--mask is resident mode: TERM is forwarded and the death re-raised."""
    proc = subprocess.Popen(
        [AZEXEC, "--mask", "--token-env", "T", "--", "sh", "-c", "echo ready; exec sleep 30"],
        env=base_env(T=token),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.terminate()
    assert proc.wait(timeout=20) == -signal.SIGTERM
    assert proc.stdout.read() == b""
    proc.stdout.close()


def test_expiry_watch_warns_and_diagnoses(token_factory: Callable[..., str]) -> None:
    """End to end: a token expiring mid-run is announced, and a later failure is blamed on it."""
    command = ["--no-exec", "--token-env", "T", "--", "sh", "-c", "sleep 5; exit 3"]
    result = run(*command, env=base_env(T=token_factory(lifetime=3)))
    assert result.returncode == 3
    start_check, watch, diagnosis = result.stderr.splitlines()
    assert start_check.startswith("azexec: warning: the access token expires in")  # under 5 minutes at start
    assert watch.startswith("azexec: warning: the access token expired (")
    assert watch.endswith(" UTC) while COMMAND is running")
    assert re.fullmatch(
        r"azexec: the access token expired \d+ seconds? into the run; "
        r"COMMAND's failure may be an authentication error",
        diagnosis,
    )


def test_mask_does_not_wait_for_what_command_left_behind(token: str, tmp_path: Path) -> None:
    """A background job holding the pipes open cannot keep azexec alive after COMMAND exits."""
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    script = f"echo done; sleep 60 & echo $! > {pidfile}"
    result = run("--mask", "--token-env", "T", "--", "sh", "-c", script, env=base_env(T=token))
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert (result.returncode, result.stdout) == (0, "done\n")
    assert time.monotonic() - started < 30


def test_resident_mode_leaves_nothing_running(token: str, tmp_path: Path) -> None:
    """When azexec is gone, so is COMMAND."""
    pidfile = tmp_path / "pid"
    result = run("--no-exec", "--token-env", "T", "--", "sh", "-c", f"echo $$ > {pidfile}", env=base_env(T=token))
    assert result.returncode == 0
    assert all_gone([int(pidfile.read_text())])


def test_mask_delivers_everything_to_a_slow_reader(token: str) -> None:
    """A reader that pauses after COMMAND exited still gets every line (no drain deadline on COMMAND's output)."""
    proc = subprocess.Popen(
        [AZEXEC, "-q", "--mask", "--token-env", "T", "--", "seq", "1", "20000"],
        stdout=subprocess.PIPE,
        env=base_env(T=token),
    )
    try:
        assert proc.stdout is not None
        time.sleep(2.5)  # the pause is the scenario: `| (sleep 2; wc -l)`
        lines = proc.stdout.read().count(b"\n")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    assert lines == 20000


def test_mask_keeps_the_order_of_stdout_and_stderr_in_one_file(token: str) -> None:
    """With 2>&1, COMMAND's two streams share one pipe, so lines come out in the order written."""
    script = "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; done"
    proc = subprocess.run(
        [AZEXEC, "-q", "--mask", "--token-env", "T", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=base_env(T=token),
        timeout=30,
        check=False,
    )
    expected = "".join(f"out{i}\nerr{i}\n" for i in range(1, 7))
    assert (proc.returncode, proc.stdout.decode()) == (0, expected)


@pytest.mark.parametrize("mode", ["--no-exec", "--mask"])
def test_an_expiry_centuries_ahead_does_not_crash_resident_mode(mode: str, tmp_path: Path) -> None:
    """exp 300 years ahead (beyond the clock calls' range as a wait): COMMAND runs and its status is azexec's."""
    tok = make_token(lifetime=300 * 365 * 86400)
    result = run("-q", mode, "--token-env", "T", "--", "sh", "-c", "exit 7", env=base_env(T=tok))
    assert (result.returncode, result.stderr) == (7, ""), explain(result)


@pytest.mark.parametrize("mode", [[], ["--no-exec"], ["--mask"]], ids=["exec", "no-exec", "mask"])
@pytest.mark.parametrize("closed", ["1", "2"])
def test_command_runs_with_a_closed_stream_still_closed(mode: list[str], closed: str, tmp_path: Path) -> None:
    """`azexec … >&-` runs COMMAND, as env(1) does, and COMMAND finds that fd closed too."""
    marker = tmp_path / "ran"
    probe = f"test ! -e /proc/self/fd/{closed} && touch {marker}"
    script = f'exec "{AZEXEC}" {" ".join(mode)} --token-env T -- sh -c "$0" {closed}>&-'
    result = subprocess.run(["sh", "-c", script, probe], env=base_env(T=make_token()), capture_output=True, timeout=30)
    assert result.returncode == 0, result
    assert marker.exists()


@pytest.mark.parametrize(
    "ignores_term", [False, True], ids=["COMMAND stops on SIGTERM", "COMMAND ignores SIGTERM: SIGKILL after the grace"]
)
def test_a_part_failing_while_command_runs_stops_it_and_exits_125(
    token: str, tmp_path: Path, ignores_term: bool
) -> None:
    """--mask cannot write COMMAND's output (/dev/full): COMMAND is stopped (SIGTERM, and SIGKILL
    STOP_GRACE_SECONDS later if it ignores that), azexec says why and exits 125."""
    pid_file = tmp_path / "pid"
    ignore = "trap '' TERM; " if ignores_term else ""
    command = f"{ignore}echo $$ > {pid_file}; echo hello; exec sleep 300"
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [AZEXEC, "--mask", "--token-env", "T", "--", "sh", "-c", command],
            env=base_env(T=token),
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.decode().startswith("azexec: --mask: cannot pass on COMMAND's output: No space left on device")
    assert all_gone([int(pid_file.read_text())])


#: Signals whose default action ends a process, beyond the usual ones: resident mode forwards them, as exec would.
#: Linux's own signals (macOS has no real-time signals, SIGPWR or SIGSTKFLT): left out under --surface=macos.
LINUX_SIGNALS = ["SIGPWR", "SIGSTKFLT", "SIGRTMIN", "SIGRTMIN+5", "SIGRTMAX"]
MORE_SIGNALS = [
    *("SIGALRM", "SIGPROF", "SIGVTALRM", "SIGIO"),
    *(pytest.param(name, marks=pytest.mark.linux_only) for name in LINUX_SIGNALS),
]

#: Exits 40 when it gets the signal numbered argv[2], after saying it is ready in the file argv[1].
CATCHER = """
import os, signal, sys, time
signal.signal(int(sys.argv[2]), lambda *_: sys.exit(40))
# Not open().write(): a signal landing while that file object is finalised runs the handler inside its close(),
# and CPython drops the SystemExit there (5 in 300 runs under load, without azexec).
os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600))
# Not signal.pause(): a signal landing just before it is handled only when another comes (pause's race).
while True:
    time.sleep(0.1)
"""


def _number(name: str) -> int:
    base, _, offset = name.partition("+")
    # Python 3.10 has no name for SIGSTKFLT (3.11 added it); the kernel has it, as 16.
    return int(getattr(signal, base) if base != "SIGSTKFLT" or hasattr(signal, base) else 16) + int(offset or 0)


@pytest.mark.parametrize("name", MORE_SIGNALS)
def test_every_catchable_signal_reaches_command(token: str, tmp_path: Path, name: str) -> None:
    """kill -ALRM (PROF, IO, PWR, a real-time signal, …) to resident azexec: COMMAND gets it; azexec is not killed."""
    ready = tmp_path / "ready"
    argv = [AZEXEC, "--no-exec", "--token-env", "T", "--", sys.executable, "-c", CATCHER, str(ready)]
    proc = subprocess.Popen([*argv, str(_number(name))], env=base_env(T=token), stdin=subprocess.DEVNULL)
    try:
        wait_until(ready.exists, what="COMMAND's handler")
        proc.send_signal(_number(name))
        assert proc.wait(timeout=20) == 40
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("name", ["SIGALRM", "SIGPROF", pytest.param("SIGRTMIN", marks=pytest.mark.linux_only)])
def test_a_stopping_signal_during_a_token_command_kills_it_and_azexec_dies_of_it(tmp_path: Path, name: str) -> None:
    """Before COMMAND runs, the same signals end azexec as SIGTERM does: the token command's group first."""
    pids = tmp_path / "pids"
    token_cmd = f"sh -c 'sleep 300 & echo $! > {pids}; wait'"
    proc = subprocess.Popen([AZEXEC, "--token-cmd", token_cmd, "--", "true"], env=base_env())
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), what="the token command's start")
        proc.send_signal(_number(name))
        assert proc.wait(timeout=20) == -_number(name)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all_gone([int(pids.read_text())])
