"""Describe a plan for --dry-run, the token redacted to a fingerprint."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from azexec import sources
from azexec.plan import Plan
from azexec.token import Claims, describe_span, format_utc


def fingerprint(secret: str) -> str:
    """Identify SECRET without revealing it: its length and a short sha256 prefix."""
    import hashlib

    digest = hashlib.sha256(secret.encode()).hexdigest()[:12]
    return f"<redacted: {len(secret)} chars, sha256 {digest}>"


def as_dict(plan: Plan, argv: Sequence[str], executable: str | None, now: float | None = None) -> dict[str, Any]:
    """Return the report as plain data; the token appears only as its fingerprint."""
    now = time.time() if now is None else now

    def variable(value: sources.Sourced | None, secret: bool = False) -> dict[str, Any] | None:
        if value is None:
            return None
        return {"value": fingerprint(value.value) if secret else value.value, "source": value.origin}

    return {
        "command": list(argv),
        "executable": executable,
        "variables": {
            sources.TOKEN_VAR: variable(plan.token, secret=True),
            sources.SUBSCRIPTION_VAR: variable(plan.subscription),
            sources.TENANT_VAR: variable(plan.tenant),
        },
        "removed": list(plan.removed),
        "token": _claims(plan.claims, now) if plan.claims else None,
        "warnings": list(plan.warnings),
    }


def as_json(plan: Plan, argv: Sequence[str], executable: str | None) -> str:
    """Render the report as JSON."""
    import json

    return json.dumps(as_dict(plan, argv, executable), indent=2)


def as_text(plan: Plan, argv: Sequence[str], executable: str | None) -> str:
    """Render the report for a person."""
    import shlex

    data = as_dict(plan, argv, executable)
    if not argv:
        lines = ["would run: nothing (no COMMAND given; at a terminal azexec would start $SHELL)"]
    elif executable:
        lines = [f"would run: {shlex.join(argv)}", f"  found at: {executable}"]
    else:
        lines = [f"would run: {shlex.join(argv)}", f"  {argv[0]} is not on PATH: running it would exit 127"]
    lines.append("environment:")
    for name, entry in data["variables"].items():
        if entry is None:
            lines.append(f"  {name} (unset; removed if inherited)")
        else:
            lines.append(f"  {name}={entry['value']}  from {entry['source']}")
    for name in plan.removed:
        lines.append(f"  {name} (removed)")
    token = data["token"]
    if token is None:
        lines.append("token: not decoded (--no-verify)")
    else:
        lines.append("token:")
        for key in ("tenant", "audience", "user", "app", "object_id", "identity_type", "roles", "scopes", "issuer"):
            value = token[key]
            if value:
                label = key.replace("_", " ")
                lines.append(f"  {label + ':':<15}{', '.join(value) if isinstance(value, list) else value}")
        lines.append(f"  {'expires:':<15}{token['expires']} ({token['time_left']} left)")
    return "\n".join(lines)


def _claims(claims: Claims, now: float) -> dict[str, Any]:
    return {
        "tenant": claims.tenant,
        "audience": list(claims.audiences),
        "user": claims.user,
        "app": claims.app,
        "object_id": claims.object_id,
        "identity_type": claims.identity_type,
        "roles": list(claims.roles),
        "scopes": list(claims.scopes),
        "issuer": claims.issuer,
        "expires": format_utc(claims.expires_at),
        "expires_at": claims.expires_at,
        "time_left": describe_span(claims.expires_at - now),
        "seconds_left": int(claims.expires_at - now),
    }
