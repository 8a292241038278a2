"""Job control at a real terminal: azexec behaves exactly like the command it wraps.

An interactive bash (and dash) runs in a pty; each test drives the same job
without azexec first, then with it, and expects the same: the shell survives
Ctrl-Z and `bg`, a PIN prompt started with `&` is answered after `fg`, a
COMMAND that suspends only itself gives the prompt back and `fg` resumes it,
and Ctrl-\\ at a token command's prompt ends azexec with SIGQUIT.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import AZEXEC, TENANT, Terminal, base_env, make_token, wait_until, write_private

pytestmark = pytest.mark.slow

PROMPT = "sh$ "


def _shell(terminal: Callable[..., Terminal], shell: str, home: Path) -> Terminal:
    """Start an interactive SHELL (bash or dash) on a new pty, at its prompt."""
    env = base_env(PS1=PROMPT, HOME=str(home), TERM="dumb", ENV="")
    args = ["--norc", "--noprofile", "-i"] if shell == "bash" else ["-i"]
    term = terminal(args, env, program=shell)
    term.expect(PROMPT)
    return term


def _alive(term: Terminal, tag: str) -> None:
    """The shell still reads and runs commands."""
    term.send(f"echo alive-{tag}-$((40+2))\n")
    term.expect(f"alive-{tag}-42")


def _release(gate: Path) -> bool:
    """Let a job reading GATE (a FIFO) go on; tell whether one was reading it (a stopped job is not)."""
    try:
        fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return False
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)
    return True


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_ctrl_z_then_bg_while_a_token_command_runs_leaves_the_shell_alone(
    terminal: Callable[..., Terminal], tmp_path: Path, shell: str
) -> None:
    """Ctrl-Z, `bg`: the job finishes in the background and the shell goes on, with azexec as without it.

    Before: azexec made itself the terminal's foreground once the token command ended; the shell read
    end-of-file and exited.
    """
    token = write_private(tmp_path / "token", make_token())
    # Each job waits in a builtin (`read` from a FIFO the test writes after `bg`): no fork, so no window where
    # Ctrl-Z stops a vfork'ed child before its exec while its shell sleeps in vfork, never to report a stop
    # (with or without azexec: neither bash nor azexec could see the job stop then). A fixed `sleep 2` ended
    # before Ctrl-Z came under load.
    gates = {tag: tmp_path / f"go-{tag}" for tag in ("plain", "azexec")}
    for gate in gates.values():
        os.mkfifo(gate)
    term = _shell(terminal, shell, tmp_path)
    try:
        for tag, line in {
            "plain": "sh -c 'echo $$ > {dir}/started-plain; read go < {dir}/go-plain; touch {dir}/done-plain'",
            "azexec": f'"{AZEXEC}" --token-cmd "sh -c \'echo \\$\\$ > {{dir}}/started-azexec;'
            f" read go < {{dir}}/go-azexec; cat {token}'\""
            " -- sh -c 'touch {dir}/done-azexec'",
        }.items():
            term.output = b""
            term.send(line.format(dir=tmp_path) + "\n")
            started = tmp_path / f"started-{tag}"
            wait_until(lambda path=started: path.exists() and path.read_text().strip(), what=f"the {tag} job's start")
            # Ctrl-Z once the job (for azexec, its token command) holds the terminal, as a user presses it.
            job = int(started.read_text())
            wait_until(lambda pgid=job: os.tcgetpgrp(term.master) == pgid, what=f"the {tag} job holding the terminal")
            term.send("\x1a")
            term.expect("Stopped")
            term.send("bg\n")
            wait_until(lambda gate=gates[tag]: _release(gate), what=f"the {tag} job reading again after bg")
            wait_until((tmp_path / f"done-{tag}").exists, what=f"the {tag} job's end in the background")
            _alive(term, tag)
    finally:
        for gate in gates.values():  # a job still waiting (the test failed) ends, not left behind
            _release(gate)
    term.send("exit\n")
    assert term.finish() == 0


def test_a_pin_prompt_started_in_the_background_is_answered_after_fg(
    terminal: Callable[..., Terminal], tmp_path: Path
) -> None:
    """`… &` then `fg`: the prompt gets the terminal and the PIN, with azexec as without it.

    Before: the token command was resumed but never given the terminal: every `fg` said "Stopped".
    """
    token = write_private(tmp_path / "token", make_token())
    pin = tmp_path / "pin.sh"
    pin.write_text(f'printf "PIN: " >&2; read pin; test "$pin" = 1234 && echo "unlocked-$1" >&2 && cat {token}\n')
    term = _shell(terminal, "bash", tmp_path)
    # Say at once when a background job stops, as a user sees it before typing fg.
    term.send("set -b\n")
    term.expect(PROMPT)
    for line, done in (
        (f"sh {pin} plain > /dev/null &", "unlocked-plain"),
        (f'"{AZEXEC}" --token-cmd "sh {pin} azexec" -- printenv AZURE_CLI_TENANT_ID &', TENANT),
    ):
        term.output = b""
        term.send(line + "\n")
        term.expect("PIN: ")
        term.expect("Stopped")
        term.send("fg\n")
        term.send("1234\n")
        term.expect(done)
    _alive(term, "after")
    term.send("exit\n")
    assert term.finish() == 0


#: COMMAND: says "before", suspends itself alone (as ssh's ~^Z does), and says "after" once continued.
SELF_SUSPENDING = "import os, signal; print('before', flush=True); os.kill(os.getpid(), signal.SIGTSTP); print('after')"


@pytest.mark.parametrize(
    "mode", [["--no-exec"], ["--mask"], ["--identity-server"]], ids=["no-exec", "mask", "identity-server"]
)
def test_a_command_that_suspends_itself_gives_the_prompt_back_and_fg_resumes_it(
    terminal: Callable[..., Terminal], tmp_path: Path, mode: list[str]
) -> None:
    """Resident mode: COMMAND stops itself; the shell shows the job stopped, and `fg` resumes it: as under exec.

    Before: azexec stayed in the foreground; no prompt came back and keys went nowhere.
    """
    term = _shell(terminal, "bash", tmp_path)
    for argv in (
        [sys.executable, "-c", f'"{SELF_SUSPENDING}"'],
        [f'"{AZEXEC}"', *mode, "--token-env", "T", "--", sys.executable, "-c", f'"{SELF_SUSPENDING}"'],
    ):
        term.output = b""
        term.send(f"T={make_token()} {' '.join(argv)}\n")
        term.expect("before")
        term.expect("Stopped")
        term.expect(PROMPT)
        term.output = b""
        term.send("fg\n")
        term.expect("after")
        term.expect(PROMPT)
        term.send("echo status=$?\n")
        term.expect("status=0")
    term.send("exit\n")
    assert term.finish() == 0


def test_ctrl_backslash_at_a_token_commands_prompt_ends_azexec_with_sigquit(
    terminal: Callable[..., Terminal],
) -> None:
    """Ctrl-\\ at the prompt: the token command is killed by SIGQUIT, and so azexec dies of it, as the plain
    command would (131 for a shell), not 125.
    """
    prompt = "sh -c 'printf \"PIN: \" >&2; read pin'"
    plain = terminal(["-c", prompt], base_env(), program="sh")
    plain.expect("PIN: ")
    plain.send("\x1c")
    wrapped = terminal(["--token-cmd", prompt, "--", "true"], base_env())
    wrapped.expect("PIN: ")
    wrapped.send("\x1c")
    assert wrapped.finish() == plain.finish() == -signal.SIGQUIT
    assert b"Traceback" not in wrapped.output
