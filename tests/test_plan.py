"""Resolving values by precedence, and the checks that span sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import OTHER_TENANT, SUBSCRIPTION, TENANT, held, make_token, request

from azexec import sources
from azexec.errors import TokenRejected, TokenSourceError, UsageError
from azexec.plan import prepare
from azexec.redact import fingerprint

OTHER_SUBSCRIPTION = "99999999-8888-4777-8666-555555555555"


def env_file(private_file: Callable[..., Path], name: str, **values: str) -> str:
    return str(private_file("".join(f"{k}={v}\n" for k, v in values.items()), name=name))


def test_token_only_takes_tenant_from_tid(private_file: Callable[..., Path]) -> None:
    """With nothing else given, the tenant comes from the token and the subscription is unset."""
    path = private_file(make_token())
    plan = prepare(request(token_file=str(path)), {})
    assert plan.variables() == {
        "AZURE_CLI_ACCESS_TOKEN": path.read_text(),
        "AZURE_CLI_SUBSCRIPTION_ID": None,
        "AZURE_CLI_TENANT_ID": TENANT,
    }
    assert plan.tenant is not None
    assert plan.tenant.origin == "the token's tid claim"


def test_precedence_option_over_json_over_env_file(private_file: Callable[..., Path]) -> None:
    """--subscription beats the token's JSON, which beats an env file."""
    doc = {"accessToken": make_token(), "subscription": SUBSCRIPTION, "tenant": TENANT}
    path = private_file(json.dumps(doc))
    ids = env_file(private_file, "ids.env", AZURE_CLI_SUBSCRIPTION_ID=OTHER_SUBSCRIPTION, AZURE_CLI_TENANT_ID=TENANT)
    plan = prepare(request(token_file=str(path), env_files=(ids,)), {})
    assert plan.subscription is not None
    assert (plan.subscription.value, plan.subscription.origin) == (SUBSCRIPTION, f"--token-file {path} (subscription)")
    plan = prepare(request(token_file=str(path), env_files=(ids,), subscription=OTHER_SUBSCRIPTION), {})
    assert plan.subscription is not None
    assert plan.subscription.origin == "--subscription"
    bare = private_file(make_token(), name="bare")
    plan = prepare(request(token_file=str(bare), env_files=(ids,)), {})
    assert plan.subscription is not None
    assert plan.subscription.origin == f"--env-file {ids}"


def test_later_env_file_wins_per_key(private_file: Callable[..., Path]) -> None:
    """Two env files: the later one's keys win, the earlier fills the gaps."""
    first = env_file(
        private_file, "a.env", AZURE_CLI_SUBSCRIPTION_ID=SUBSCRIPTION, AZURE_CLI_ACCESS_TOKEN=make_token(upn="first")
    )
    second = env_file(private_file, "b.env", AZURE_CLI_ACCESS_TOKEN=make_token(upn="second"))
    plan = prepare(request(env_files=(first, second)), {})
    assert plan.claims is not None
    assert plan.claims.user == "second"
    assert plan.subscription is not None
    assert plan.subscription.origin == f"--env-file {first}"


def test_env_file_ids_with_token_from_elsewhere(private_file: Callable[..., Path]) -> None:
    """A committed .env with only the IDs pairs with a token from a vault."""
    ids = env_file(private_file, "ids.env", AZURE_CLI_SUBSCRIPTION_ID=SUBSCRIPTION)
    plan = prepare(request(token_env="T", env_files=(ids,)), {"T": make_token()})
    assert plan.subscription is not None
    assert plan.subscription.value == SUBSCRIPTION
    assert plan.removed == ("T",)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "no access token source"),
        ({"token_stdin": True, "token_env": "T"}, "both --token-stdin and --token-env supply an access token"),
        ({"token_file": "f", "token_cmd": "c"}, "both --token-file and --token-cmd"),
    ],
)
def test_source_count_is_a_usage_error(given: dict[str, object], message: str) -> None:
    """Exactly one source must supply the token: two are a conflict check() finds, none one prepare() finds."""
    with pytest.raises(UsageError, match=message):
        prepare(request(**given).check(), {"T": make_token()})


def test_token_option_and_env_file_token_conflict(private_file: Callable[..., Path]) -> None:
    """An env file holding a token conflicts with a --token-* option, naming both."""
    secret = env_file(private_file, "secret.env", AZURE_CLI_ACCESS_TOKEN=make_token())
    with pytest.raises(UsageError, match=f"both --token-env and --env-file {secret} supply an access token"):
        prepare(request(token_env="T", env_files=(secret,)), {"T": make_token()})


@pytest.mark.parametrize("where", ["option", "json", "env"])
def test_tenant_guid_that_is_not_tid_is_refused(private_file: Callable[..., Path], where: str) -> None:
    """A tenant GUID from any source that differs from tid names both."""
    tok = make_token()
    asked = request(token_file=str(private_file(tok)))
    if where == "option":
        asked = request(token_file=asked.token_file, tenant=OTHER_TENANT)
    elif where == "json":
        asked = request(token_file=str(private_file(json.dumps({"accessToken": tok, "tenant": OTHER_TENANT}))))
    else:
        ids = env_file(private_file, "ids.env", AZURE_CLI_TENANT_ID=OTHER_TENANT)
        asked = request(token_file=asked.token_file, env_files=(ids,), tenant=TENANT)
    with pytest.raises(TokenRejected, match=f"the tenant {OTHER_TENANT} from .* is not the token's tenant {TENANT}"):
        prepare(asked, {})


def test_tenant_domain_and_case_are_accepted(private_file: Callable[..., Path]) -> None:
    """A domain cannot be compared with tid and wins as given; GUIDs compare case-insensitively."""
    path = str(private_file(make_token()))
    plan = prepare(request(token_file=path, tenant="contoso.onmicrosoft.com"), {})
    assert plan.tenant is not None
    assert plan.tenant.value == "contoso.onmicrosoft.com"
    assert prepare(request(token_file=path, tenant=TENANT.upper()), {}).tenant is not None


def test_malformed_ids_from_files_are_refused(private_file: Callable[..., Path]) -> None:
    """A subscription name where an ID belongs is caught before az sees it."""
    ids = env_file(private_file, "ids.env", AZURE_CLI_SUBSCRIPTION_ID="my-subscription")
    with pytest.raises(TokenSourceError, match="is not a GUID; use the subscription ID"):
        prepare(request(token_env="T", env_files=(ids,)), {"T": make_token()})
    ids = env_file(private_file, "ids2.env", AZURE_CLI_TENANT_ID="not a tenant")
    with pytest.raises(TokenSourceError, match="neither a GUID nor a domain"):
        prepare(request(token_env="T", env_files=(ids,)), {"T": make_token()})


def test_no_verify_skips_jwt_checks_but_not_format(private_file: Callable[..., Path]) -> None:
    """--no-verify accepts an opaque token, never one with whitespace inside."""
    plan = prepare(request(token_env="T", no_verify=True), {"T": "opaque-token-123"})
    assert plan.claims is None
    assert plan.tenant is None
    with pytest.raises(TokenRejected, match="whitespace"):
        prepare(request(token_env="T", no_verify=True), {"T": "opaque token"})


def test_warnings_are_collected(private_file: Callable[..., Path]) -> None:
    """A world-readable file, a short-lived token and a foreign audience each add a warning."""
    path = private_file(make_token(lifetime=120, aud="https://graph.microsoft.com"))
    path.chmod(0o644)
    plan = prepare(request(token_file=str(path)), {})
    assert len(plan.warnings) == 2
    assert "readable by other users" in plan.warnings[0]
    assert "not Azure Resource Manager" in plan.warnings[1]
    # Kept apart: moot when the identity server will replace the token.
    (expiring,) = plan.expiring
    assert "expires in" in expiring


def test_no_value_object_shows_the_token(private_file: Callable[..., Path]) -> None:
    """repr, str and format of the plan, a source's credential and the provider's cache show a fingerprint only."""
    tok = make_token()
    path = str(private_file(tok))
    plan = prepare(request(token_file=path), {})
    provider = held(tok)
    objects = {
        "plan": plan,
        "secret": plan.token,
        "credential": sources.File(path, label="--token-file").read(),
        "accepted": plan.policy.accept(plan.token),
        "cache": provider.cache,
        "request": request(token_file=path, mask=True, identity_server=True),
    }
    for name, value in objects.items():
        for text in (repr(value), str(value), f"{value}"):
            assert tok not in text, name
            assert tok[:40] not in text, name
    assert fingerprint(tok) in repr(plan)
