"""The --dry-run report, rendered from a fixed plan at a fixed moment."""

from __future__ import annotations

import json

from helpers import SUBSCRIPTION, TENANT

from azexec.plan import Plan
from azexec.program import Found
from azexec.redact import Secret, fingerprint
from azexec.report import as_json, as_text
from azexec.sources import File, Sourced
from azexec.token import Claims, TokenPolicy

NOW = 1_800_000_000
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJlc2lnbmF0dXJl"
CLAIMS = Claims(
    expires_at=NOW + 3540,
    not_before=NOW - 60,
    tenant=TENANT,
    audiences=("https://management.azure.com/",),
    user="alice@contoso.example",
    app=None,
    object_id="0b1c2d3e-0000-4000-8000-000000000001",
    identity_type=None,
    roles=("Contributor",),
    scopes=("user_impersonation",),
    issuer=f"https://sts.windows.net/{TENANT}/",
)
PLAN = Plan(
    token=Secret(TOKEN, "--token-file t"),
    subscription=Sourced(SUBSCRIPTION, "--subscription"),
    tenant=Sourced(TENANT, "the token's tid claim"),
    claims=CLAIMS,
    expires_at=CLAIMS.expires_at,
    warnings=(),
    expiring=(),
    removed=("ARM_TOKEN",),
    source=File("t", label="--token-file"),
    policy=TokenPolicy(),
)


def test_text_report_is_exact() -> None:
    """The text report, line for line: command, environment (token redacted), identity, time left."""
    assert as_text(PLAN, ["az", "group", "list"], Found("/usr/bin/az", None, ""), NOW) == "\n".join(
        [
            "would run: az group list",
            "  found at: /usr/bin/az",
            "environment:",
            f"  AZURE_CLI_ACCESS_TOKEN={fingerprint(TOKEN)}  from --token-file t",
            f"  AZURE_CLI_SUBSCRIPTION_ID={SUBSCRIPTION}  from --subscription",
            f"  AZURE_CLI_TENANT_ID={TENANT}  from the token's tid claim",
            "  ARM_TOKEN (removed)",
            "token:",
            f"  tenant:        {TENANT}",
            "  audience:      https://management.azure.com/",
            "  user:          alice@contoso.example",
            "  object id:     0b1c2d3e-0000-4000-8000-000000000001",
            "  roles:         Contributor",
            "  scopes:        user_impersonation",
            f"  issuer:        https://sts.windows.net/{TENANT}/",
            "  expires:       2027-01-15 08:59:00 UTC (59 minutes left)",
        ]
    )


def test_text_report_predicts_exit_127() -> None:
    """COMMAND not on PATH: the report says running it would exit 127."""
    text = as_text(PLAN, ["nope"], Found(None, 127, "not found"), NOW)
    assert text.splitlines()[:2] == ["would run: nope", "  nope is not on PATH: running it would exit 127"]


def test_json_report_holds_the_fingerprint_not_the_token() -> None:
    """The JSON report has the same facts; the token only as its fingerprint."""
    data = json.loads(as_json(PLAN, ["az"], Found("/usr/bin/az", None, ""), NOW))
    assert data["variables"]["AZURE_CLI_ACCESS_TOKEN"] == {"value": fingerprint(TOKEN), "source": "--token-file t"}
    assert data["token"]["seconds_left"] == 3540
    assert TOKEN not in json.dumps(data)
