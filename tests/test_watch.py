"""The expiry watch's schedule and diagnosis, with an injected clock (no sleeping)."""

from __future__ import annotations

from helpers import start_part

from azexec.parts.watch import Event, ExpiryWatch, diagnosis, schedule
from azexec.token import format_utc

NOW = 1_800_000_000.0


def test_schedule_warns_five_minutes_before_and_at_expiry() -> None:
    """An hour left: a warning 5 minutes before expiry, and one at expiry."""
    expires = NOW + 3600
    assert schedule(expires, NOW) == [
        Event(
            expires - 300, f"the access token expires in 5 minutes ({format_utc(expires)}) and COMMAND is still running"
        ),
        Event(expires, f"the access token expired ({format_utc(expires)}) while COMMAND is running"),
    ]


def test_schedule_skips_a_five_minute_warning_already_past() -> None:
    """Under 5 minutes left at start: only the expiry itself is announced (the start-up check warned already)."""
    assert [event.due for event in schedule(NOW + 100, NOW)] == [NOW + 100]


def test_no_diagnosis_for_a_success() -> None:
    """COMMAND succeeded: nothing to explain, expired or not."""
    assert diagnosis(expires_at=NOW, started=NOW - 60, code=0, now=NOW + 10) is None


def test_no_diagnosis_while_the_token_is_valid() -> None:
    """COMMAND failed with the token still valid: not the token's fault."""
    assert diagnosis(expires_at=NOW + 60, started=NOW, code=1, now=NOW) is None


def test_diagnosis_blames_an_expiry_during_the_run() -> None:
    """COMMAND failed after the token expired: say how far into the run it expired."""
    message = diagnosis(expires_at=NOW + 180, started=NOW, code=3, now=NOW + 200)
    assert (
        message == "the access token expired 3 minutes into the run; COMMAND's failure may be an authentication error"
    )


def test_watch_says_due_warnings_and_the_diagnosis() -> None:
    """With the clock past expiry, both warnings come out, and stop() explains the failure."""
    said: list[str] = []
    diagnosed: list[str] = []
    clock = [NOW]
    watch = ExpiryWatch(NOW + 600, warn=said.append, diagnose=diagnosed.append, clock=lambda: clock[0])
    start_part(watch)
    clock[0] = NOW + 700
    watch.running()
    assert watch.thread is not None
    watch.thread.join(timeout=10)
    watch.stop(1)
    assert [line.split(" (")[0] for line in said] == [
        "the access token expires in 5 minutes",
        "the access token expired",
    ]
    assert diagnosed == [diagnosis(expires_at=NOW + 600, started=NOW, code=1, now=NOW + 700)]


def test_quiet_watch_still_diagnoses() -> None:
    """-q drops the warnings (WARN does nothing); the diagnosis of a failure stays."""
    diagnosed: list[str] = []
    watch = ExpiryWatch(NOW + 600, warn=lambda _: None, diagnose=diagnosed.append, clock=lambda: NOW + 700)
    start_part(watch)
    watch.running()
    watch.stop(2)
    assert len(diagnosed) == 1


def test_stop_before_due_says_nothing() -> None:
    """COMMAND ends before any warning is due: the watch ends at once, silently."""
    said: list[str] = []
    watch = ExpiryWatch(NOW + 3600, warn=said.append, diagnose=said.append, clock=lambda: NOW)
    start_part(watch)
    watch.running()
    watch.stop(0)
    assert said == []
