"""azd through --identity-server: azd's external-authentication protocol, with a client written from azd's source.

No azd binary is on any registry these machines reach: tests/azdclient.py is
azd's RemoteCredential and its transport rule, step for step from
Azure/azure-dev, run as COMMAND as azd would be.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import (
    ARM,
    OTHER_TENANT,
    TENANT,
    base_env,
    claims_of,
    explain,
    held,
    make_token,
    mint_command,
    nearly_expired,
    run,
    start_part,
    write_private,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azexec import sources
from azexec.listen import Listen
from azexec.parts.identity import IdentityServer
from azexec.parts.identity.protocols import AZD, placeholders, reaches
from azexec.parts.identity.server import Server

CLIENT = str(Path(__file__).parent / "azdclient.py")
VAULT = "https://vault.azure.net"
API = "/token?api-version=2023-07-12-preview"


def azd(*args: str) -> list[str]:
    """COMMAND: `azd auth token --output json`, as the client written from azd's source runs it."""
    return [sys.executable, CLIENT, *args]


def token_file(tmp_path: Path, token: str) -> str:
    return str(write_private(tmp_path / "token", token))


def test_azd_gets_the_held_token_and_its_expiry(tmp_path: Path) -> None:
    """The headline: azd asks for Resource Manager's scope and gets the token, expiresOn in RFC 3339, UTC."""
    token = make_token(lifetime=3600)
    result = run("--identity-server", "--token-file", token_file(tmp_path, token), "--", *azd())
    assert result.returncode == 0, explain(result)
    answer = json.loads(result.stdout)
    assert answer["token"] == token
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims_of(token)["exp"]))
    assert answer["expiresOn"] == expires


def test_a_scope_of_another_resource_runs_the_token_command_for_it(tmp_path: Path) -> None:
    """Per-resource: Key Vault's scope runs --token-cmd's {resource} for Key Vault, as the other protocols do."""
    result = run("--identity-server", "--token-cmd", mint_command(tmp_path), "--", *azd("--scope", VAULT + "/.default"))
    assert result.returncode == 0, explain(result)
    assert claims_of(json.loads(result.stdout)["token"])["aud"] == VAULT
    assert (tmp_path / "count").read_text().split()[1:] == [VAULT]  # after the first token, one run: Key Vault


def test_an_unservable_scope_is_a_status_error_with_azexecs_reason(tmp_path: Path) -> None:
    """A token file holds one audience: azd shows azexec's one line, with the way out, not a bare status code."""
    path = token_file(tmp_path, make_token())
    result = run("--identity-server", "--token-file", path, "--", *azd("--scope", VAULT + "/.default"))
    assert result.returncode == 1
    assert result.stderr.startswith(
        "ERROR: fetching token: RemoteCredential: failed to acquire token: code: GetTokenError message: azexec: "
        "the token azexec holds is for https://management.azure.com/, not for https://vault.azure.net;"
    ), explain(result)
    assert "put {resource} in --token-cmd" in result.stderr


def test_a_tenant_other_than_the_tokens_is_refused_by_name(tmp_path: Path) -> None:
    """azd names a tenant (--tenant-id): another than the held token's gets a status error naming both."""
    path = token_file(tmp_path, make_token())
    result = run("--identity-server", "--token-file", path, "--", *azd("--tenant-id", OTHER_TENANT))
    assert result.returncode == 1
    assert f"asks for a token from tenant {OTHER_TENANT}, but the token azexec holds is from tenant {TENANT}" in (
        result.stderr
    ), explain(result)


def test_the_tokens_own_tenant_is_served(tmp_path: Path) -> None:
    """tenantId the held token's own (any case): served."""
    token = make_token()
    path = token_file(tmp_path, token)
    result = run("--identity-server", "--token-file", path, "--", *azd("--tenant-id", TENANT.upper()))
    assert result.returncode == 0, explain(result)
    assert json.loads(result.stdout)["token"] == token


def test_a_wrong_key_gets_a_plain_401(tmp_path: Path) -> None:
    """Whoever lacks AZD_AUTH_KEY learns nothing: a 401, which azd shows as its status code."""
    path = token_file(tmp_path, make_token())
    wrong = f"AZD_AUTH_KEY=wrong exec {sys.executable} {CLIENT}"
    result = run("--identity-server", "--token-file", path, "--", "sh", "-c", wrong)
    assert result.returncode == 1
    assert result.stderr == "ERROR: fetching token: RemoteCredential: unexpected status code: 401\n"


def test_inherited_azd_variables_are_replaced(tmp_path: Path) -> None:
    """A terminal inside VS Code has its own AZD_AUTH_*: azd asks azexec, and VS Code's certificate is gone
    (with it azd would refuse azexec's plain-http loopback endpoint)."""
    token = make_token()
    vscode = {"AZD_AUTH_ENDPOINT": "https://127.0.0.1:1", "AZD_AUTH_KEY": "vscode", "AZD_AUTH_CERT": "MIIB"}
    result = run("--identity-server", "--token-file", token_file(tmp_path, token), "--", *azd(), env=base_env(**vscode))
    assert result.returncode == 0, explain(result)
    assert json.loads(result.stdout)["token"] == token


def test_a_refresh_reaches_azd(tmp_path: Path) -> None:
    """The held token has 5 minutes left: azd gets a fresh one from the token command, as an SDK would."""
    stale = nearly_expired()
    source = sources.Command(mint_command(tmp_path, resource=ARM), timeout=30, label="--token-cmd")
    part = IdentityServer(held(stale, source=source), tenant=TENANT, subscription=None)
    env = start_part(part)
    try:
        status, answer = _post(env, {"scopes": [ARM + "/.default"]})
    finally:
        part.stop(0)
    assert (status, answer["status"]) == (200, "success")
    assert answer["token"] != stale
    assert claims_of(answer["token"])["aud"] == ARM


def test_min_validity_refuses_a_short_token_as_a_status_error(tmp_path: Path) -> None:
    """--min-validity 2h: the per-resource token lives one hour, and azd is told so."""
    command = mint_command(tmp_path)
    result = run(
        "--identity-server", "--min-validity", "30m", "--token-cmd", command, "--",
        *azd("--scope", VAULT + "/.default"),
        env=base_env(),
    )  # fmt: skip
    assert result.returncode == 0, explain(result)  # an hour's token passes 30 minutes
    result = run(
        "--identity-server", "--min-validity", "30m", "--token-cmd", mint_command(tmp_path, lifetime=1200), "--",
        *azd("--scope", VAULT + "/.default"),
    )  # fmt: skip
    assert result.returncode != 0
    assert "less than --min-validity 30 minutes" in result.stderr, explain(result)


def test_mask_hides_the_key_and_the_token(tmp_path: Path) -> None:
    """--mask: COMMAND printing AZD_AUTH_KEY, its endpoint's path or the token shows none of them."""
    token = make_token()
    show = 'echo "$AZD_AUTH_KEY $AZD_AUTH_ENDPOINT"; ' + f"{sys.executable} {CLIENT}"
    result = run("--identity-server", "--mask", "--token-file", token_file(tmp_path, token), "--", "sh", "-c", show)
    assert result.returncode == 0, explain(result)
    key_line = result.stdout.splitlines()[0]
    assert key_line.startswith("*** http://127.0.0.1:"), key_line
    assert key_line.endswith("/***"), key_line
    assert token not in result.stdout


# The protocol on the wire, in process: what azd sends, and what else may arrive.


@pytest.fixture
def env() -> Any:
    part = IdentityServer(held(make_token(lifetime=7200)), tenant=TENANT, subscription=None)
    try:
        yield start_part(part)
    finally:
        part.stop(0)


def _post(
    env: dict[str, str],
    body: Any,
    *,
    key: str | None = None,
    target: str = API,
    method: str = "POST",
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    """Send azd's request (BODY as JSON, or RAW as it is); return the status and the JSON answer."""
    parts = urlsplit(env["AZD_AUTH_ENDPOINT"])
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + (key or env["AZD_AUTH_KEY"])}
    try:
        data = raw if raw is not None else json.dumps(body).encode()
        connection.request(method, parts.path + target, body=data if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


#: Requests azd's key admits but azexec cannot serve: each a 200 whose status is "error", and the reason.
REFUSED = {
    "no scopes": ({"tenantId": TENANT}, "name exactly one scope"),
    "two scopes": ({"scopes": [ARM + "/.default", VAULT + "/.default"]}, "name exactly one scope"),
    "a scope that is not a string": ({"scopes": [7]}, "name exactly one scope"),
    "a delegated scope": ({"scopes": ["https://graph.microsoft.com/User.Read"]}, "whole resource's scope"),
    "a bare /.default": ({"scopes": ["/.default"]}, "whole resource's scope"),
    "a shell character": ({"scopes": [VAULT + "/$(id)/.default"]}, "no quotes, spaces or shell characters"),
    "a tenant that is not a string": ({"scopes": [ARM + "/.default"], "tenantId": 7}, "tenantId must be a string"),
    "an array": ([ARM + "/.default"], "the body must be a JSON object"),
}


@pytest.mark.parametrize("how", list(REFUSED))
def test_each_refusal_after_the_key_is_a_status_error(env: dict[str, str], how: str) -> None:
    """Every refusal azd must understand: 200, status "error", code GetTokenError, azexec's line; no secret."""
    body, reason = REFUSED[how]
    status, answer = _post(env, body)
    assert status == 200
    assert set(answer) == {"status", "code", "message"}
    assert (answer["status"], answer["code"]) == ("error", "GetTokenError")
    assert answer["message"].startswith("azexec: ")
    assert reason in answer["message"]
    assert env["AZD_AUTH_KEY"] not in answer["message"]


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[" * 10_000, b'{"scopes": ["\xff"]}'],
    ids=["not JSON", "nested 10 000 deep", "not UTF-8"],
)
def test_a_malformed_body_is_a_status_error(env: dict[str, str], raw: bytes) -> None:
    status, answer = _post(env, None, raw=raw)
    assert (status, answer["status"]) == (200, "error")
    assert "the body must be a JSON object" in answer["message"]


def test_another_api_version_is_named(env: dict[str, str]) -> None:
    """A future azd asking another version is told which one azexec speaks."""
    status, answer = _post(env, {"scopes": [ARM + "/.default"]}, target="/token?api-version=2099-01-01")
    assert (status, answer["status"]) == (200, "error")
    assert "azexec speaks api-version 2023-07-12-preview of azd's protocol, not 2099-01-01" in answer["message"]


@pytest.mark.parametrize(
    ("change", "status"),
    [({"key": "wrong"}, 401), ({"method": "GET"}, 405), ({"target": "/other"}, 404)],
    ids=["wrong key", "GET", "another path"],
)
def test_before_the_key_refusals_are_plain_statuses(env: dict[str, str], change: dict[str, str], status: int) -> None:
    """Without azd's key (or at another path, or with another method) nothing is said beyond a status."""
    got, answer = _post(env, {"scopes": [ARM + "/.default"]}, **change)
    assert got == status
    assert "status" not in answer


def test_a_body_too_large_is_refused_and_the_connection_closed(env: dict[str, str]) -> None:
    """A Content-Length over the bound is refused from the head alone (413, nothing of the body read) and the
    connection closed: its body must never be taken for a next request."""
    import socket

    parts = urlsplit(env["AZD_AUTH_ENDPOINT"])
    head = (
        f"POST {parts.path}{API} HTTP/1.1\r\nHost: 127.0.0.1:{parts.port}\r\n"
        f"Authorization: Bearer {env['AZD_AUTH_KEY']}\r\nContent-Length: {1 << 20}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", parts.port or 0), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer


def test_azd_is_given_the_server_only_at_a_loopback_address() -> None:
    """azd takes plain http from a loopback IP only: never offered under a name (localhost, a container's)."""
    assert reaches(AZD, "127.0.0.1")
    assert reaches(AZD, "127.0.0.2")
    assert reaches(AZD, "::1")
    assert not reaches(AZD, "localhost")
    assert not reaches(AZD, "host.docker.internal")
    assert not reaches(AZD, "172.17.0.1")
    assert "AZD_AUTH_ENDPOINT" not in placeholders("http://host.docker.internal:<port>", "host.docker.internal")


def test_under_an_advertised_name_inherited_azd_variables_are_removed() -> None:
    """--listen … --advertise NAME: azd could not use the server, and must not use VS Code's either."""
    part = IdentityServer(
        held(make_token()), tenant=TENANT, subscription=None, listen=Listen("127.0.0.1", advertised="azexec.test")
    )
    env = start_part(part, {"AZD_AUTH_ENDPOINT": "https://127.0.0.1:1", "AZD_AUTH_KEY": "k", "AZD_AUTH_CERT": "c"})
    try:
        assert not any(name.startswith("AZD_AUTH_") for name in env)
        assert "IDENTITY_ENDPOINT" in env
    finally:
        part.stop(0)


def test_the_server_offers_azd_on_loopback() -> None:
    server = Server(held(make_token()))
    try:
        assert server.served()["AZD_AUTH_ENDPOINT"].startswith(f"http://127.0.0.1:{server.port}/")
    finally:
        server.server_close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=30),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
        st.fixed_dictionaries(
            {"scopes": st.lists(st.text(max_size=60), max_size=3)}, optional={"tenantId": st.text(max_size=40)}
        ).map(lambda value: json.dumps(value).encode()),
    ),
    right_key=st.booleans(),
)
def test_no_body_gets_a_5xx_or_a_secret(env: dict[str, str], body: bytes, right_key: bool) -> None:
    """Property: whatever body arrives, the answer is 200 or a JSON 4xx, and only a success holds a token."""
    status, answer = _post(env, None, raw=body, key=None if right_key else "guess")
    assert status < 500
    text = json.dumps(answer)
    assert env["AZD_AUTH_KEY"] not in text
    assert urlsplit(env["AZD_AUTH_ENDPOINT"]).path[1:] not in text
    if answer.get("status") != "success":
        assert "eyJ" not in text
