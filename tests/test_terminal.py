"""Behaviour at a real terminal (a pty that is the controlling terminal of azexec)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AZEXEC, TENANT, base_env, make_token


class Terminal:
    """azexec running on a pty that is its controlling terminal, as in an interactive shell."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()

        def take_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [AZEXEC, *args], stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=take_terminal
        )
        os.close(slave)
        self.output = b""

    def expect(self, text: str, timeout: float = 20) -> None:
        """Read until TEXT has appeared."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared in {self.output!r}"
            if select.select([self.master], [], [], remaining)[0]:
                try:
                    self.output += os.read(self.master, 4096)
                except OSError:  # the pty closes when the last process on it exits
                    break
        assert text.encode() in self.output, self.output

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> int:
        """Drain the output and return the exit status."""
        status = self.proc.wait(timeout=20)
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        return status


@pytest.fixture
def terminal() -> Iterator[Callable[[list[str], dict[str, str]], Terminal]]:
    """Start azexec on a terminal; whatever a test leaves running is killed afterwards."""
    started: list[Terminal] = []

    def start(args: list[str], env: dict[str, str]) -> Terminal:
        started.append(Terminal(args, env))
        return started[-1]

    yield start
    for term in started:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
        with contextlib.suppress(OSError):
            os.close(term.master)


def test_no_command_at_a_terminal_starts_the_shell(
    terminal: Callable[..., Terminal], tmp_path: Path, private_file: Callable[..., Path]
) -> None:
    """Without COMMAND, at a terminal, $SHELL starts with the variables set, and azexec says so."""
    shell = tmp_path / "fake-shell"
    shell.write_text('#!/bin/sh\necho "in shell: $AZURE_CLI_TENANT_ID"\n')
    shell.chmod(0o755)
    term = terminal(["--token-file", str(private_file(make_token()))], base_env(SHELL=str(shell)))
    term.expect(f"in shell: {TENANT}")
    assert term.finish() == 0
    assert f"azexec: starting {shell} with the token set".encode() in term.output


def test_token_stdin_prompts_without_echo(terminal: Callable[..., Terminal]) -> None:
    """At a terminal --token-stdin prompts, and the typed token is not echoed."""
    tok = make_token()
    term = terminal(["--token-stdin", "--", "printenv", "AZURE_CLI_TENANT_ID"], base_env())
    term.expect("Azure access token (input hidden): ")
    term.send(tok + "\n")
    term.expect(TENANT)
    assert term.finish() == 0
    assert tok[20:60].encode() not in term.output


def test_token_cmd_can_prompt_at_the_terminal(
    terminal: Callable[..., Terminal], private_file: Callable[..., Path]
) -> None:
    """--token-cmd gets the terminal as stdin (in the foreground), so a PIN prompt works."""
    path = private_file(make_token())
    script = f'printf "PIN: " >&2; read pin; test "$pin" = 1234 && test -t 0 && cat {path}'
    term = terminal(["--token-cmd", f"sh -c '{script}'", "--", "printenv", "AZURE_CLI_TENANT_ID"], base_env())
    term.expect("PIN: ")
    term.send("1234\n")
    term.expect(TENANT)
    assert term.finish() == 0


def test_ctrl_c_at_a_token_cmd_prompt_stops_azexec(terminal: Callable[..., Terminal]) -> None:
    """Ctrl-C at the command's prompt ends the command, and azexec fails with 125 and no traceback."""
    term = terminal(["--token-cmd", "sh -c 'printf \"PIN: \" >&2; read pin'", "--", "true"], base_env())
    term.expect("PIN: ")
    term.send("\x03")
    term.expect("azexec: --token-cmd failed: sh was killed by SIGINT")
    assert term.finish() == 125
    assert b"Traceback" not in term.output
