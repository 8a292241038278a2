"""Describe a plan for --dry-run, the token redacted to a fingerprint."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from azexec import sources
from azexec.plan import Plan
from azexec.program import Found
from azexec.redact import escape, fingerprint, show
from azexec.token import Claims, describe_span, format_utc

if TYPE_CHECKING:
    from azexec.parts import Preview


def as_dict(
    plan: Plan,
    argv: Sequence[str],
    found: Found | None,
    now: float | None = None,
    notes: Sequence[str] = (),
    *,
    resident: bool = False,
    parts: Sequence[Preview] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the report as plain data; the token appears only as its fingerprint.

    Every value from the command line or the token is redacted where it looks
    secret; JSON escapes control characters itself.
    """
    now = time.time() if now is None else now
    variables, removed = _variables(plan, parts, env or {})
    status = found.status if found else None
    # A COMMAND that cannot run fails first (127, 126); else a part that would fail ends the run with 125.
    failure = next((part.failure for part in parts if part.failure), None) if status is None else None
    return {
        "command": [show(arg) for arg in argv],
        "executable": show(found.path) if found and found.path and found.status is None else None,
        "exit_status": 125 if failure else status,
        "mode": "resident" if resident else "exec",
        "parts": [part.name for part in parts],
        "before_command": [step for part in parts for step in part.steps],
        "failure": failure,
        "variables": variables,
        "removed": removed,
        "token": _claims(plan.claims, now) if plan.claims else None,
        "warnings": [*plan.warnings, *plan.expiring],
        "notes": list(notes),
    }


def _variables(
    plan: Plan, parts: Sequence[Preview], env: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any] | None], list[str]]:
    """Return what COMMAND's environment would get (each value redacted, with its source), and what it would lose."""

    def variable(value: sources.Sourced | None) -> dict[str, Any] | None:
        return {"value": show(value.value), "source": value.origin} if value is not None else None

    variables = {
        sources.TOKEN_VAR: {"value": fingerprint(plan.token.reveal()), "source": plan.token.origin},
        sources.SUBSCRIPTION_VAR: variable(plan.subscription),
        sources.TENANT_VAR: variable(plan.tenant),
    }
    removed = [show(name) for name in plan.removed]
    for part in parts:
        for name, value in part.env:
            if value is not None:
                variables[name] = {"value": show(value), "source": f"the {part.name}"}
            elif name in env:
                removed.append(name)
    return variables, removed


def as_json(plan: Plan, argv: Sequence[str], found: Found | None, now: float | None = None, **how: Any) -> str:
    """Render the report as JSON (HOW: as_dict's keywords)."""
    import json

    return json.dumps(as_dict(plan, argv, found, now, **how), indent=2)


def as_text(plan: Plan, argv: Sequence[str], found: Found | None, now: float | None = None, **how: Any) -> str:
    """Render the report for a person; every value is escaped, so none can drive the terminal."""
    data = as_dict(plan, argv, found, now, **how)
    lines = _command_lines(argv, found, data)
    if data["mode"] == "resident":
        lines.append(f"mode: resident, as COMMAND's parent ({', '.join(data['parts']) or 'nothing beside it'})")
    lines += [f"before COMMAND: {escape(step)}" for step in data["before_command"]]
    if data["failure"]:
        lines.append(f"  would fail: {escape(data['failure'])}: exit 125")
    lines.append("environment:")
    for name, entry in data["variables"].items():
        if entry is None:
            lines.append(f"  {name} (unset; removed if inherited)")
        else:
            lines.append(f"  {name}={escape(entry['value'])}  from {escape(entry['source'])}")
    lines += [f"  {name} (removed)" for name in data["removed"]]
    lines += _token_lines(data["token"])
    lines += [f"note: {note}" for note in data["notes"]]
    return "\n".join(lines)


def _command_lines(argv: Sequence[str], found: Found | None, data: dict[str, Any]) -> list[str]:
    """Say what would run, or what exec would exit with instead."""
    import shlex

    command = escape(shlex.join(data["command"]))
    if not argv or found is None:
        return ["would run: nothing (no COMMAND given; at a terminal azexec would start $SHELL)"]
    if found.status is None:
        return [f"would run: {command}", f"  found at: {data['executable']}"]
    name = show(argv[0])
    if found.status == 127:
        what = f"{name} is not on PATH"
    elif found.path is None:
        what = f"{name}: {found.reason}"
    else:
        what = f"{name} is at {show(found.path)} but is {found.reason}"
    return [f"would run: {command}", f"  {what}: running it would exit {found.status}"]


def _token_lines(token: dict[str, Any] | None) -> list[str]:
    """Describe the token's identity and time left."""
    if token is None:
        return ["token: not decoded (--no-verify)"]
    lines = ["token:"]
    for key in CLAIM_KEYS.values():
        value = token[key]
        if value:
            label = key.replace("_", " ")
            text = ", ".join(value) if isinstance(value, list) else value
            lines.append(f"  {label + ':':<15}{escape(text)}")
    lines.append(f"  {'expires:':<15}{token['expires']} ({token['time_left']} left)")
    return lines


#: The claims the report shows, by Claims field, with the report's name for each.
CLAIM_KEYS = {
    "tenant": "tenant",
    "audiences": "audience",
    "user": "user",
    "app": "app",
    "object_id": "object_id",
    "identity_type": "identity_type",
    "roles": "roles",
    "scopes": "scopes",
    "issuer": "issuer",
}


def _claims(claims: Claims, now: float) -> dict[str, Any]:
    """Return the claims for the report, each redacted where it looks secret."""
    fields = claims._asdict()
    entries: dict[str, Any] = {}
    for field, key in CLAIM_KEYS.items():
        value = fields[field]
        entries[key] = [show(v) for v in value] if isinstance(value, tuple) else (show(value) if value else value)
    return {
        **entries,
        "expires": format_utc(claims.expires_at),
        "expires_at": claims.expires_at,
        "time_left": describe_span(claims.expires_at - now),
        "seconds_left": int(claims.expires_at - now),
    }
