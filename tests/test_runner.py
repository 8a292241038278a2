"""One way to wait: one deadline for a whole step, the stop signals end it at once, nothing left behind.

The step that shows it best is --az-login's: azexec asks Resource Manager for the
subscriptions itself (a network call), perhaps after running the token command
for a fresh token, then runs az. Here Resource Manager is hostile (it trickles,
or never answers) and az is a stand-in whose release azexec reads as 2.91.0, so
that azexec takes that path; az and COMMAND record whether they ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from fakearm import FakeArm, self_signed
from helpers import AZEXEC, all_gone, base_env, make_token, wait_until, write_private

from azexec import runner


def test_a_step_inside_a_step_gets_what_is_left_and_names_the_outer_timeout() -> None:
    """The stated timeout bounds the whole step: a sub-step with a longer one gets only what is left."""
    with runner.Step(5.0):
        time.sleep(0.2)
        allowed, named = runner.budget(60.0)
        assert 4.0 < allowed <= 4.8
        assert named == 5.0
        with runner.Step(60.0) as inner:
            assert inner.remaining() <= 4.8
            assert inner.timeout == 5.0


def test_outside_a_step_a_timeout_is_its_own() -> None:
    assert runner.budget(7.0) == (7.0, 7.0)


def test_a_stop_signal_ends_a_step_even_when_blocked_before() -> None:
    """Resident mode blocks SIGTERM to forward it later; inside a step it ends the wait at once."""
    from azexec.errors import Terminated

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pids: list[int] = []
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        started = time.monotonic()
        with pytest.raises(Terminated), runner.Step(30.0):
            runner.run(["sleep", "30"], dict(os.environ), 30.0, started=pids.append)
        assert time.monotonic() - started < 10
        assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # blocked again after
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    assert all_gone(pids)


def test_a_stop_signal_pending_at_the_spawn_still_kills_the_helper(tmp_path: Path) -> None:
    """A signal that comes while the helper starts is held off until it can be killed: never left behind."""
    from azexec.errors import Terminated

    pids: list[int] = []
    with pytest.raises(Terminated), runner.Step(30.0):
        runner.run(
            ["sleep", "30"],
            dict(os.environ),
            30.0,
            started=lambda pid: (pids.append(pid), os.kill(os.getpid(), signal.SIGTERM)),
        )
    assert all_gone(pids)


def test_a_helper_leaves_its_status_and_output() -> None:
    """Its status, its stdout and its stderr, as it left them."""
    reaped = runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"], dict(os.environ), 30.0)
    assert reaped == runner.Reaped(3, b"out\n", b"err\n")


def test_a_helper_past_its_deadline_is_killed_with_its_group(tmp_path: Path) -> None:
    """At the deadline: status None, the helper and what it started killed."""
    pids = tmp_path / "pids"
    started: list[int] = []
    argv = ["sh", "-c", f"sleep 300 & echo $! > {pids}; exec sleep 300"]
    reaped = runner.run(argv, dict(os.environ), 1.0, started=started.append)
    assert reaped.status is None
    assert all_gone([*started, int(pids.read_text())])


# ---------------------------------------------------------------- --az-login against a hostile Resource Manager


class Setup(NamedTuple):
    """The environment of an --az-login run against a hostile Resource Manager, and where things are recorded."""

    env: dict[str, str]
    arm: FakeArm
    az_ran: Path
    command_ran: Path
    runtime: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def _stand_in_az(prefix: Path, ran: Path) -> Path:
    """An az whose release azexec reads as 2.91.0 (a script run by PREFIX's python, azure_cli_core's metadata
    beside it); it records that it ran, and exits 0."""
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python3").symlink_to(sys.executable)
    (prefix / "lib" / "python3.11" / "site-packages" / "azure_cli_core-2.91.0.dist-info").mkdir(parents=True)
    az = prefix / "bin" / "az"
    az.write_text(f"#!{prefix / 'bin' / 'python3'}\n# a stand-in for azure.cli\nopen({str(ran)!r}, 'a').write('ran')\n")
    az.chmod(0o755)
    return az


@pytest.fixture(params=["trickles", "silent"])
def hostile(request: pytest.FixtureRequest, tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[Setup]:
    """--az-login's world: a stand-in az, a user config whose cloud's Resource Manager is hostile."""
    arm = FakeArm(*certificate, [], how=str(request.param))
    az_ran = tmp_path / "az-ran"
    az = _stand_in_az(tmp_path / "prefix", az_ran)
    config, runtime = tmp_path / "azure", tmp_path / "runtime"
    config.mkdir()
    runtime.mkdir(mode=0o700)
    (config / "clouds.config").write_text(f"[FakeCloud]\nendpoint_resource_manager = {arm.url}\n")
    (config / "config").write_text("[cloud]\nname = FakeCloud\n")
    env = {k: v for k, v in base_env().items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_", "ARM_"))}
    env.update(
        PATH=f"{az.parent}:{env['PATH']}",
        AZURE_CONFIG_DIR=str(config),
        REQUESTS_CA_BUNDLE=str(certificate[0]),
        XDG_RUNTIME_DIR=str(runtime),
    )
    try:
        yield Setup(env, arm, az_ran, tmp_path / "command-ran", runtime)
    finally:
        arm.close()


@pytest.mark.slow
def test_a_hostile_resource_manager_ends_within_the_stated_timeout(hostile: Setup, tmp_path: Path) -> None:
    """Trickling or silent: 125 and one line naming the stated timeout, within it (and start-up); no az, no COMMAND.

    Before: a trickle held azexec for over ten minutes, silence for twice the timeout.
    """
    path = write_private(tmp_path / "token", make_token())
    argv = [AZEXEC, "--az-login", "--token-cmd-timeout", "6", "--token-file", str(path), "--"]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "sh", "-c", f"touch {hostile.command_ran}"], env=hostile.env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 125, (took, done.stderr)
    assert done.stderr == (
        "azexec: --az-login: Resource Manager's list of subscriptions did not come within 6s; "
        "check that Azure Resource Manager answers (and any proxy); raise --token-cmd-timeout\n"
    )
    # The stated 6 s, and start-up: never the 12 s of two sub-steps each given the whole timeout.
    assert took < 11, took
    assert hostile.arm.asked.is_set()
    assert not hostile.az_ran.exists()
    assert not hostile.command_ran.exists()
    assert list(hostile.runtime.iterdir()) == []


def _stopped(setup: Setup, argv: list[str], stop: int, ready: Callable[[], bool]) -> int:
    """Run azexec ARGV; once READY, send it STOP; return its status."""
    proc = subprocess.Popen([AZEXEC, *argv, "--", "sh", "-c", f"touch {setup.command_ran}"], env=setup.env)
    try:
        wait_until(ready, within=60, what="the step azexec waits in")
        sent = time.monotonic()
        proc.send_signal(stop)
        status = proc.wait(timeout=60)
        assert time.monotonic() - sent < 10  # at once, not at the deadline (300 s)
        return status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_during_the_listing_ends_azexec_at_once(hostile: Setup, tmp_path: Path, stop: int) -> None:
    """TERM or INT while azexec waits for Resource Manager: it dies of the signal; no az, no COMMAND, no directory."""
    path = write_private(tmp_path / "token", make_token())
    argv = ["--az-login", "--token-cmd-timeout", "300", "--token-file", str(path)]
    assert _stopped(hostile, argv, stop, hostile.arm.asked.is_set) == -stop
    assert not hostile.az_ran.exists()
    assert not hostile.command_ran.exists()
    assert list(hostile.runtime.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_during_the_token_command_for_the_listing_ends_azexec(
    hostile: Setup, tmp_path: Path, stop: int
) -> None:
    """The held token is due for refresh, so the token command runs again for the listing; TERM or INT then:
    azexec dies of it, the command's group is killed; no listing, no az, no COMMAND, no directory.

    Before: the signal was swallowed, and COMMAND ran anyway.
    """
    token = write_private(tmp_path / "token", make_token(lifetime=300, iat=int(time.time()) - 3300))
    first, pids = tmp_path / "first-run", tmp_path / "pids"
    token_cmd = f"sh -c 'if [ -e {first} ]; then echo $$ > {pids}; exec sleep 300; fi; touch {first}; cat {token}'"
    argv = ["--az-login", "--token-cmd-timeout", "300", "--token-cmd", token_cmd]
    status = _stopped(hostile, argv, stop, lambda: pids.exists() and pids.read_text().strip())
    assert status == -stop
    assert all_gone([int(pids.read_text())])
    assert not hostile.arm.asked.is_set()
    assert not hostile.az_ran.exists()
    assert not hostile.command_ran.exists()
    assert list(hostile.runtime.iterdir()) == []
