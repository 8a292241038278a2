"""The identity server in process: refusals, hostile clients and a hypothesis sweep, no SDK needed."""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import pytest
from helpers import (
    ARM,
    TENANT,
    added_by,
    claims_of,
    held,
    make_token,
    mint_command,
    nearly_expired,
    request,
    start_part,
    wait_until,
    write_private,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azexec import sources
from azexec.errors import Refused
from azexec.parts.identity import IdentityServer
from azexec.parts.identity.provider import Provider
from azexec.plan import prepare
from azexec.token import Tenant, TokenPolicy

TOKEN = make_token(lifetime=7200, appid="11111111-2222-4333-8444-555555555555")


class Endpoint(NamedTuple):
    """The parts of an endpoint URL a client needs."""

    port: int
    path: str


def _endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None
    return Endpoint(parts.port, parts.path)


class Server(NamedTuple):
    """The identity server as COMMAND knows it: from IDENTITY_ENDPOINT, IDENTITY_HEADER and ARM_MSI_ENDPOINT."""

    port: int
    app_service_path: str
    imds_path: str
    header: str


class Live:
    """A started identity server, and what COMMAND is told about it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        app_service, imds = _endpoint(env["IDENTITY_ENDPOINT"]), _endpoint(env["ARM_MSI_ENDPOINT"])
        assert app_service.port == imds.port
        self.server = Server(app_service.port, app_service.path, imds.path, env["IDENTITY_HEADER"])
        self.port = self.server.port

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, Any]]:
        """Send one request; return the status and the JSON body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            return response.status, json.loads(body) if body else {}
        finally:
            connection.close()

    def app_service(self, query: str = f"?api-version=2019-08-01&resource={ARM}") -> tuple[int, dict[str, Any]]:
        return self.get(self.server.app_service_path + query, {"X-IDENTITY-HEADER": self.server.header})


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """An identity server holding TOKEN, for the whole module."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    env = start_part(part)
    try:
        yield Live(env)
    finally:
        part.stop(0)


def test_a_good_request_gets_the_token_and_its_times(live: Live) -> None:
    """200 with access_token, expires_on (a string), expires_in, not_before, resource, token_type, client_id."""
    status, body = live.app_service()
    assert status == 200
    assert body["access_token"] == TOKEN
    assert body["resource"] == ARM
    assert body["token_type"] == "Bearer"
    assert body["client_id"] == "11111111-2222-4333-8444-555555555555"
    assert isinstance(body["expires_on"], str)
    # TOKEN is made when the module is imported, maybe minutes before this runs: its life left is from its exp.
    left = claims_of(TOKEN)["exp"] - time.time()
    assert left - 5 <= body["expires_in"] <= left + 1
    assert "not_before" in body


Ask = tuple[str, str, dict[str, str]]


def _good(live: Live, query: str = f"?resource={ARM}", **headers: str) -> Ask:
    """A request that would be served, changed by QUERY and HEADERS."""
    return "GET", live.server.app_service_path + query, {"X-IDENTITY-HEADER": live.server.header, **headers}


#: Each refusal: what is sent, and the status it gets.
REFUSALS: dict[str, tuple[Callable[[Live], Ask], int]] = {
    "no header": (lambda live: ("GET", live.server.app_service_path + f"?resource={ARM}", {}), 401),
    "wrong header": (lambda live: _good(live, **{"X-IDENTITY-HEADER": live.server.header[:-1] + "x"}), 401),
    "unknown path": (lambda live: ("GET", f"/nope?resource={ARM}", {"X-IDENTITY-HEADER": live.server.header}), 404),
    "POST": (lambda live: ("POST", *_good(live)[1:]), 405),
    "foreign Host": (lambda live: _good(live, Host=f"attacker.example:{live.port}"), 403),
    "Origin": (lambda live: _good(live, Origin="https://attacker.example"), 403),
    "no resource": (lambda live: _good(live, "?api-version=2019-08-01"), 400),
    "two resources": (lambda live: _good(live, f"?resource={ARM}&resource=https://vault.azure.net"), 400),
    "unservable resource": (lambda live: _good(live, "?resource=https://vault.azure.net"), 400),
    "IMDS without Metadata": (lambda live: ("GET", live.server.imds_path + f"?resource={ARM}", {}), 400),
}


@pytest.mark.parametrize("how", list(REFUSALS))
def test_each_refusal_is_a_json_4xx_without_secrets(live: Live, how: str) -> None:
    """Every refusal: its status, a JSON body with error, error_description, statusCode and message; no secret."""
    build, status = REFUSALS[how]
    method, path, headers = build(live)
    got, body = live.get(path, headers, method)
    assert got == status
    assert set(body) == {"error", "error_description", "statusCode", "message"}
    assert body["statusCode"] == status
    assert body["message"].startswith("azexec: ")
    text = json.dumps(body)
    for secret in (TOKEN, live.server.header, live.server.app_service_path[1:], live.server.imds_path[1:]):
        assert secret not in text


def test_resources_are_normalised_and_arm_spellings_served(live: Live) -> None:
    """/.default, a trailing slash, case, the other ARM spelling and the ARM app ID: all the held token's."""
    for resource in (
        "https://management.azure.com",
        "HTTPS://Management.Azure.COM/.default",
        "https://management.core.windows.net/",
        "797f4846-ba00-4fd7-ba43-dac1f8f63013",
    ):
        status, body = live.app_service(f"?resource={resource}")
        assert (status, body.get("resource")) == (200, resource)


def test_hostile_clients_do_not_stop_a_real_one(live: Live) -> None:
    """Garbage, a 10 MB header and a connection that sends nothing, all at once: the real client is served."""
    silent = socket.create_connection(("127.0.0.1", live.port))
    garbage = socket.create_connection(("127.0.0.1", live.port))
    garbage.sendall(b"\x00\xff garbage \r\n\r\n")
    huge = socket.create_connection(("127.0.0.1", live.port))

    def send_huge() -> None:
        with contextlib.suppress(OSError):  # the server hangs up on it, as it should
            huge.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n\r\n")

    sender = threading.Thread(target=send_huge)
    sender.start()
    try:
        # Served at all means served beside them: a blocked server would time out this request (10 s).
        assert live.app_service()[0] == 200
    finally:
        sender.join(timeout=20)
        for sock in (silent, garbage, huge):
            sock.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    query=st.text(max_size=80),
    name=st.sampled_from(["X-IDENTITY-HEADER", "Metadata", "Host", "Origin", "X-Other", "Content-Length"]),
    value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    secret_path=st.booleans(),
)
def test_no_request_gets_a_5xx_or_a_secret(
    live: Live, path: str, query: str, name: str, value: str, secret_path: bool
) -> None:
    """Property: whatever path, query and header arrive, the answer is 200 or a JSON 4xx, and holds no secret."""
    from urllib.parse import quote

    target = (live.server.app_service_path if secret_path else "/" + path.lstrip("/")) + "?" + quote(query, safe="=&")
    status, body = live.get(
        target, {name: value, "X-IDENTITY-HEADER": live.server.header} if secret_path else {name: value}
    )
    assert status < 500
    text = json.dumps(body)
    for secret in (live.server.header, live.server.app_service_path[1:], live.server.imds_path[1:]):
        assert secret not in text
    if status != 200:
        assert TOKEN not in text


def test_a_refresh_storm_runs_the_token_command_once(tmp_path: Any) -> None:
    """100 clients at the moment of refresh: one token command run serves them all."""
    stale = nearly_expired()
    command = sources.Command(mint_command(tmp_path, resource=ARM), timeout=30, label="--token-cmd")
    provider = held(stale, source=command)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider.get(ARM).token.reveal())) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert (tmp_path / "count").read_text().split() == [ARM]
    assert len(results) == 100
    assert len(set(results)) == 1
    assert results[0] != stale


def test_an_env_file_token_is_read_again_like_a_token_file(tmp_path: Path) -> None:
    """A token held in an --env-file is refreshed from the file, as a --token-file one is."""
    stale, fresh = nearly_expired(), make_token(lifetime=3600)
    env_file = write_private(tmp_path / "azure.env", f"AZURE_CLI_ACCESS_TOKEN={stale}\n")
    provider = held(stale, source=sources.EnvFile(str(env_file), label="--env-file"))
    write_private(env_file, f"AZURE_CLI_ACCESS_TOKEN={fresh}\n")
    assert provider.get(ARM).token.reveal() == fresh


@pytest.mark.parametrize("resource", [ARM, "https://vault.azure.net"], ids=["refreshed", "per resource"])
def test_min_validity_refuses_a_later_token_with_too_little_left(tmp_path: Path, resource: str) -> None:
    """--min-validity 30m: a refreshed or per-resource token living 20 minutes gets a 4xx that names it."""
    stale = nearly_expired()
    command = sources.Command(mint_command(tmp_path, lifetime=1200), timeout=30, label="--token-cmd")
    # Seven minutes on: the held token has expired, so nothing can be served in place of the refused one.
    later = lambda: time.time() + 420  # noqa: E731 - a clock
    policy = TokenPolicy(min_validity=1800, tenants=(Tenant(TENANT, "the test"),), clock=later)
    part = IdentityServer(held(stale, source=command, policy=policy), tenant=TENANT, subscription=None)
    live = Live(start_part(part))
    try:
        status, body = live.app_service(f"?api-version=2019-08-01&resource={resource}")
    finally:
        part.stop(0)
    assert status == 400
    assert "less than --min-validity 30 minutes" in body["message"]


@pytest.mark.parametrize(
    "resource",
    [
        "--output=/tmp/x",
        "-o tsv",
        "https://vault.azure.net\nx",
        "https://" + "a" * 600,
        "/",
        "/.default",
        "//",
        "vault",
    ],
    ids=["long option", "short option", "newline", "600 chars", "slash", "/.default", "//", "bare word"],
)
def test_a_malformed_resource_never_reaches_the_token_command(tmp_path: Path, resource: str) -> None:
    """Only an https:// or api:// URI or a GUID becomes a token command's argument; anything else is a 400."""
    command = sources.Command(mint_command(tmp_path), timeout=30, label="--token-cmd")
    part = IdentityServer(held(TOKEN, source=command), tenant=TENANT, subscription=None)
    live = Live(start_part(part))
    try:
        status, body = live.app_service("?" + urlencode({"api-version": "2019-08-01", "resource": resource}))
    finally:
        part.stop(0)
    assert status == 400, body
    assert not (tmp_path / "count").exists()


def test_a_later_token_without_a_tenant_is_refused(private_file: Callable[..., Path]) -> None:
    """A refreshed token with no tid claim cannot be shown to be the held token's tenant: refused."""
    path = private_file(nearly_expired())
    now = [time.time()]
    plan = prepare(request(token_file=str(path)), {}, clock=lambda: now[0])
    path.write_text(make_token(lifetime=3600, drop=("tid",)))
    now[0] += 420  # the held token has expired: nothing can be served in place of the refused one
    with pytest.raises(Refused, match=f"names no tenant .*for tenant {TENANT}"):
        Provider.for_plan(plan).get(ARM)


def test_an_audience_with_resource_runs_the_first_command_for_it(tmp_path: Path) -> None:
    """--audience https://vault.azure.net with {resource}: the first token command asks for Key Vault, not ARM."""
    vault = "https://vault.azure.net"
    plan = prepare(request(token_cmd=mint_command(tmp_path), audiences=(vault,)), {})
    assert plan.claims is not None
    assert plan.claims.audiences == (vault,)
    assert (tmp_path / "count").read_text().split() == [vault]


def _raw(live: Live, request_head: bytes) -> int:
    """Send REQUEST_HEAD as it is; return the status of the answer."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request_head)
        return int(sock.recv(4096).split(b" ", 2)[1])


@pytest.mark.parametrize(
    "framing",
    [
        "Host: {host}\r\nHost: attacker.example\r\n",
        "Host: {host}\r\nContent-Length: 5\r\n\r\nhello",
        "Host: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    ],
    ids=["second Host", "Content-Length body", "chunked body"],
)
def test_ambiguous_framing_is_a_400(live: Live, framing: str) -> None:
    """Two Host headers or a GET with a body are refused, though the secret header is right."""
    target = f"{live.server.app_service_path}?resource={ARM}"
    head, _, body = framing.format(host=f"127.0.0.1:{live.port}").partition("\r\n\r\n")
    wire = f"GET {target} HTTP/1.1\r\nX-IDENTITY-HEADER: {live.server.header}\r\n{head}\r\n\r\n{body}"
    assert _raw(live, wire.encode()) == 400


@pytest.mark.parametrize(
    ("head", "status"),
    [
        ("GET {target} HTTP/1.1\r\nHost: {host}\r\nX-IDENTITY-HEADER:\r\n {header}\r\n", 400),
        ("GET {target} HTTP/1.1\r\nHost: {host}\r\nX-IDENTITY-HEADER {header}\r\n", 400),
        ("GET {target} HTTP/1.1\r\nHost : {host}\r\nX-IDENTITY-HEADER: {header}\r\n", 400),
        ("GET {target} HTTP/2.0\r\nHost: {host}\r\nX-IDENTITY-HEADER: {header}\r\n", 400),
        ("GET {target} HTTP/1.1\r\nHost: {host}\r\nX-IDENTITY-HEADER: {header}\r\n" + "X-A: b\r\n" * 100, 431),
    ],
    ids=["folded header", "no colon", "space before the colon", "HTTP/2.0", "101 headers"],
)
def test_a_head_the_strict_parser_refuses(live: Live, head: str, status: int) -> None:
    """What http.server's parser would guess at is refused: each with the right header otherwise."""
    target = f"{live.server.app_service_path}?resource={ARM}"
    wire = head.format(target=target, host=f"127.0.0.1:{live.port}", header=live.server.header) + "\r\n"
    assert _raw(live, wire.encode()) == status


def test_an_http_0_9_request_is_refused() -> None:
    """A request line of two words (HTTP/0.9) is a 400: nothing azexec serves speaks it."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    live = Live(start_part(part))
    try:
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            sock.sendall(f"GET {live.server.app_service_path}?resource={ARM}\r\n".encode())
            answer = sock.recv(4096)
    finally:
        part.stop(0)
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_an_absolute_target_naming_another_host_is_a_400(live: Live) -> None:
    """GET http://attacker.example/<path> with this server's Host: refused, though path and header are right."""
    target = f"http://attacker.example{live.server.app_service_path}?resource={ARM}"
    wire = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nX-IDENTITY-HEADER: {live.server.header}\r\n\r\n"
    assert _raw(live, wire.encode()) == 400


def test_both_no_proxy_spellings_hold_the_union_and_loopback() -> None:
    """NO_PROXY and no_proxy each get what the user had in either, plus loopback."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    env = added_by(part, {"NO_PROXY": "a.example", "no_proxy": ".corp.internal,a.example"})
    assert env["NO_PROXY"] == env["no_proxy"] == "a.example,.corp.internal,127.0.0.1,localhost"


def _trickle(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """A slow client: a request head one byte a second, for as long as the server keeps it (≤ 30 s, or STOP)."""
    with contextlib.suppress(OSError):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        opened.append(sock)
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n"[:30]:
            if stop.wait(1):
                return
            sock.sendall(bytes([byte]))


def test_slow_and_idle_connections_do_not_starve_a_real_client(live: Live) -> None:
    """70 connections trickling a byte a second and 70 idle ones: a real request is still answered at once."""
    stop = threading.Event()
    opened: list[socket.socket] = []
    slow = [threading.Thread(target=_trickle, args=(live.port, stop, opened)) for _ in range(70)]
    for thread in slow:
        thread.start()
    idle = [socket.create_connection(("127.0.0.1", live.port)) for _ in range(70)]
    try:
        wait_until(lambda: len(opened) == 70, what="the slow clients' connections")
        # The client's own 10 s timeout is the bound: a starved server would answer only when the trickles end (30 s).
        connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
        connection.request("GET", f"{live.server.app_service_path}?resource={ARM}", headers=_good(live)[2])
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=20)
        for sock in idle + opened:
            sock.close()


def test_a_trickling_head_is_cut_off_at_its_deadline(live: Live) -> None:
    """A head sent a byte every half second (40 bytes: 20 s) is cut off long before it would end."""
    closed = False
    with socket.create_connection(("127.0.0.1", live.port), timeout=20) as sock:
        for byte in (b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 40)[:40]:
            try:
                sock.sendall(bytes([byte]))
                if select.select([sock], [], [], 0.5)[0]:
                    closed = sock.recv(4096) == b""
                    break
            except ConnectionError:
                closed = True
                break
    assert closed


def test_a_failed_refresh_serves_the_valid_token_warns_once_and_retries_later(tmp_path: Path) -> None:
    """The token command fails while the held token has 5 minutes left: served, one warning, no retry storm."""
    stale = nearly_expired()
    count = tmp_path / "count"
    command = sources.Command(
        f"sh -c 'echo run >> {count}; echo vault sealed >&2; exit 2'", timeout=30, label="--token-cmd"
    )
    warnings: list[str] = []
    provider = held(stale, source=command)
    provider.warn = warnings.append
    answers = [provider.get(ARM).token.reveal() for _ in range(5)]
    assert answers == [stale] * 5
    assert count.read_text().split() == ["run"]  # tried once; again only after RETRY_SECONDS
    (warning,) = warnings
    assert warning.startswith("refreshing the token failed: --token-cmd failed: sh exited with status 2")
    assert "serving the token held" in warning


def test_a_short_lived_source_is_not_run_on_every_request(tmp_path: Path) -> None:
    """Eight-minute tokens (under the 10-minute threshold) are replaced halfway through their life, not per request."""
    command = sources.Command(mint_command(tmp_path, lifetime=480), timeout=30, label="--token-cmd")
    first = make_token(lifetime=480)
    provider = held(first, source=command)
    assert [provider.get(ARM).token.reveal() for _ in range(5)] == [first] * 5
    assert not (tmp_path / "count").exists()


def test_a_source_that_gives_the_same_token_back_is_not_asked_again_at_once(
    tmp_path: Path, private_file: Callable[..., Path]
) -> None:
    """az's own cache in its last minutes hands back the token held: azexec asks again only later."""
    stale = nearly_expired()
    path = private_file(stale)
    count = tmp_path / "count"
    provider = held(
        stale, source=sources.Command(f"sh -c 'echo run >> {count}; cat {path}'", timeout=30, label="--token-cmd")
    )
    assert [provider.get(ARM).token.reveal() for _ in range(5)] == [stale] * 5
    assert count.read_text().split() == ["run"]


APP_ID = "11111111-2222-4333-8444-555555555555"
OTHER = "99999999-2222-4333-8444-555555555555"
UAMI = "/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z"


@pytest.mark.parametrize(
    ("parameter", "value", "status"),
    [
        ("client_id", APP_ID, 200),
        ("client_id", APP_ID.upper(), 200),
        ("client_id", OTHER, 400),
        ("object_id", OTHER, 400),
        ("principal_id", OTHER, 400),
        (
            "mi_res_id",
            "/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z",
            400,
        ),
        (
            "msi_res_id",
            "/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z",
            400,
        ),
    ],
    ids=[
        "own client_id",
        "own client_id, other case",
        "other client_id",
        "object_id",
        "principal_id",
        "mi_res_id",
        "msi_res_id",
    ],
)
def test_a_request_for_another_identity_is_refused(live: Live, parameter: str, value: str, status: int) -> None:
    """Only the held token's own identity is served; a request naming another gets a 400 naming both."""
    got, body = live.app_service("?" + urlencode({"api-version": "2019-08-01", "resource": ARM, parameter: value}))
    assert got == status, body
    if status == 400:
        assert f"asks for the identity with {parameter}" in body["message"]
        assert f"client_id {APP_ID}" in body["message"]


def test_variables_naming_another_credential_are_removed() -> None:
    """AZURE_CLIENT_ID, ARM_CLIENT_ID, secrets, certificates, federated token files: gone from COMMAND's environment."""
    stray = {
        "AZURE_CLIENT_ID": "a",
        "AZURE_CLIENT_SECRET": "b",
        "AZURE_CLIENT_CERTIFICATE_PATH": "c",
        "AZURE_FEDERATED_TOKEN_FILE": "d",
        "ARM_CLIENT_ID": "e",
        "ARM_CLIENT_SECRET": "f",
        "ARM_OIDC_TOKEN": "g",
        "AZURE_TOKEN_CREDENTIALS": "dev",
        "UNRELATED": "kept",
    }
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    env = added_by(part, stray)
    assert {name: env.get(name) for name in stray} == {
        **dict.fromkeys(stray),
        "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
        "UNRELATED": "kept",
    }


def test_stale_terraform_ids_never_pair_with_the_token() -> None:
    """An inherited ARM_SUBSCRIPTION_ID is removed when azexec resolved none; ARM_TENANT_ID becomes the token's."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    env = added_by(part, {"ARM_SUBSCRIPTION_ID": "00000000-0000-4000-8000-00000000dead", "ARM_TENANT_ID": "stale"})
    assert "ARM_SUBSCRIPTION_ID" not in env
    assert env["ARM_TENANT_ID"] == TENANT


# ------------------------------------------------ App Service 2017 (az before 2.73.0, under --az-login only)


@pytest.fixture
def offering() -> Iterator[tuple[IdentityServer, Live]]:
    """A server of its own: these tests switch the 2017 protocol on and off."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    env = start_part(part)
    try:
        yield part, Live(env)
    finally:
        part.stop(0)


def _legacy(live: Live, variables: dict[str, str], secret: str | None) -> int:
    """Ask as msrestazure's webapp path does: MSI_ENDPOINT + /?resource=…&api-version=2017-09-01, a secret header."""
    path = urlsplit(variables["MSI_ENDPOINT"]).path + f"/?resource={ARM}&api-version=2017-09-01"
    return live.get(path, {} if secret is None else {"secret": secret})[0]


def test_the_2017_protocol_is_served_only_once_offered_and_with_its_secret(
    offering: tuple[IdentityServer, Live],
) -> None:
    """Not offered: 404 even with the secret. Offered: 401 without the secret, 200 with it."""
    part, live = offering
    assert part.server is not None
    secret = part.server.legacy.secret
    variables = part.server.legacy.variables(f"http://127.0.0.1:{live.port}")
    assert _legacy(live, variables, secret) == 404
    assert part.offer_legacy() == variables
    assert _legacy(live, variables, None) == 401
    assert _legacy(live, variables, secret[:-1] + "x") == 401
    assert _legacy(live, variables, secret) == 200


def test_an_unused_2017_offer_is_withdrawn(offering: tuple[IdentityServer, Live]) -> None:
    """After az login, a newer az never used it: it is switched off again (COMMAND never learns of it)."""
    part, live = offering
    variables = part.offer_legacy()
    assert part.keep_legacy() is False
    assert part.server is not None
    assert _legacy(live, variables, part.server.legacy.secret) == 404


def test_a_used_2017_offer_is_kept(offering: tuple[IdentityServer, Live]) -> None:
    """An older az logged in with it: every az process COMMAND runs will ask the same way."""
    part, live = offering
    variables = part.offer_legacy()
    assert part.server is not None
    assert _legacy(live, variables, part.server.legacy.secret) == 200
    assert part.keep_legacy() is True
    assert _legacy(live, variables, part.server.legacy.secret) == 200


def test_the_2017_protocol_is_never_advertised_to_command() -> None:
    """--identity-server alone: no MSI_ENDPOINT, MSI_SECRET or APPSETTING_WEBSITE_SITE_NAME, even inherited ones."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    inherited = {"MSI_ENDPOINT": "http://x", "MSI_SECRET": "s", "APPSETTING_WEBSITE_SITE_NAME": "site"}
    try:
        env = start_part(part, inherited)
    finally:
        part.stop(0)
    assert not set(inherited) & set(env)
