"""Behaviour at a real terminal (a pty that is the controlling terminal of azexec)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import AZEXEC, SUBSCRIPTION, TENANT, Terminal, base_env, make_token

pytestmark = pytest.mark.slow


def fake_shell(tmp_path: Path) -> Path:
    """Write a $SHELL that says it ran and which tenant it sees."""
    shell = tmp_path / "fake-shell"
    shell.write_text('#!/bin/sh\necho "in shell: $AZURE_CLI_TENANT_ID"\n')
    shell.chmod(0o755)
    return shell


def test_no_command_at_a_terminal_starts_the_shell(
    terminal: Callable[..., Terminal], tmp_path: Path, private_file: Callable[..., Path]
) -> None:
    """Without COMMAND, at a terminal, $SHELL starts with the variables set, and azexec says so."""
    shell = fake_shell(tmp_path)
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
    """Ctrl-C at the command's prompt ends the command, and azexec dies of SIGINT like a plain program."""
    term = terminal(["--token-cmd", "sh -c 'printf \"PIN: \" >&2; read pin'", "--", "true"], base_env())
    term.expect("PIN: ")
    term.send("\x03")
    assert term.finish() == -signal.SIGINT
    assert b"Traceback" not in term.output


def test_no_command_with_a_bad_token_starts_no_shell(
    terminal: Callable[..., Terminal], tmp_path: Path, private_file: Callable[..., Path]
) -> None:
    """The shell is announced only once the token passed its checks."""
    shell = fake_shell(tmp_path)
    term = terminal(["--token-file", str(private_file(make_token(lifetime=-60)))], base_env(SHELL=str(shell)))
    term.expect("get a fresh one")
    assert term.finish() == 125
    assert b"starting" not in term.output
    assert b"in shell" not in term.output


def test_token_stdin_takes_a_token_longer_than_a_terminal_line(terminal: Callable[..., Terminal]) -> None:
    """A token of 6000 characters pasted at the hidden prompt arrives whole (a canonical line stops at 4095)."""
    tok = make_token(groups=[f"{i:08d}-0000-4000-8000-000000000000" for i in range(150)])
    assert len(tok) > 6000
    term = terminal(["--token-stdin", "--", "printenv", "AZURE_CLI_TENANT_ID"], base_env())
    term.expect("Azure access token (input hidden): ")
    term.send(tok + "\r")
    term.expect(TENANT)
    assert term.finish() == 0
    assert tok[100:140].encode() not in term.output


def test_token_file_naming_the_terminal_reads_without_echo(terminal: Callable[..., Terminal]) -> None:
    """--token-file /dev/tty prompts like --token-stdin: the token typed is not echoed."""
    tok = make_token()
    term = terminal(["--token-file", "/dev/tty", "--", "printenv", "AZURE_CLI_TENANT_ID"], base_env())
    term.expect("Azure access token (input hidden): ")
    term.send(tok + "\n")
    term.expect(TENANT)
    assert term.finish() == 0
    assert tok[20:60].encode() not in term.output


def test_token_cmd_prompting_on_dev_tty_works_with_stdin_redirected(
    terminal: Callable[..., Terminal], private_file: Callable[..., Path]
) -> None:
    """azexec's stdin is /dev/null, but it is in the terminal's foreground: the command gets the terminal."""
    path = private_file(make_token())
    script = f'printf "PIN: " >/dev/tty; read pin </dev/tty; test "$pin" = 1234 && cat {path}'
    args = ["--token-cmd", f"sh -c '{script}'", "--", "printenv", "AZURE_CLI_TENANT_ID"]
    term = terminal(args, base_env(), stdin=subprocess.DEVNULL)
    term.expect("PIN: ")
    term.send("1234\n")
    term.expect(TENANT)
    assert term.finish() == 0


def test_azexec_writes_nothing_on_the_terminal_while_a_slow_token_cmd_holds_it(
    terminal: Callable[..., Terminal], private_file: Callable[..., Path]
) -> None:
    """A command that prompts late (after a network round trip) owns the line: no note of azexec's lands on it."""
    path = private_file(make_token())
    script = f'sleep 1.5; printf "code: " >&2; read code; sleep 1.5; test "$code" = 42 && cat {path}'
    term = terminal(["--token-cmd", f"sh -c '{script}'", "--", "echo", "command ran"], base_env())
    term.expect("code: ")
    term.send("42\n")
    term.expect("command ran")
    assert term.finish() == 0
    assert b"azexec" not in term.output


def test_ctrl_z_at_a_token_cmd_prompt_stops_azexec_and_fg_resumes_both(
    terminal: Callable[..., Terminal], private_file: Callable[..., Path], tmp_path: Path
) -> None:
    """In an interactive bash, Ctrl-Z at the command's prompt gives the prompt back; `fg` resumes the PIN prompt."""
    path = private_file(make_token())
    script = tmp_path / "pin.sh"
    script.write_text(f'printf "PIN: " >&2; read pin; test "$pin" = 1234 && cat {path}\n')
    env = base_env(PS1="bash$ ", HOME=str(tmp_path), TERM="dumb")
    term = terminal(["--norc", "--noprofile", "-i"], env, program="bash")
    term.expect("bash$ ")
    term.send(f'"{AZEXEC}" --token-cmd "sh {script}" -- printenv AZURE_CLI_TENANT_ID\n')
    term.expect("PIN: ")
    term.send("\x1a")
    term.expect("Stopped")
    term.expect("bash$ ")
    term.send("fg\n")
    term.send("1234\n")
    term.expect(TENANT)
    term.send("exit\n")
    assert term.finish() == 0


def test_multi_line_json_pasted_at_the_prompt_is_read_whole(terminal: Callable[..., Terminal]) -> None:
    """What az account get-access-token prints, pasted over several lines: read until the JSON closes."""
    tok = make_token()
    term = terminal(["--token-stdin", "--", "printenv", "AZURE_CLI_SUBSCRIPTION_ID"], base_env())
    term.expect("Azure access token (input hidden): ")
    document = json.dumps({"accessToken": tok, "subscription": SUBSCRIPTION, "tenant": TENANT}, indent=2)
    term.send(document.replace("\n", "\r") + "\r")
    term.expect(SUBSCRIPTION)
    assert term.finish() == 0
    assert tok[20:60].encode() not in term.output
