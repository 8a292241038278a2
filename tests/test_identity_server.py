"""The identity server in process: refusals, hostile clients and a hypothesis sweep, no SDK needed."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import ARM, TENANT, make_token
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azexec.identity import IdentityServer, Server
from azexec.provider import Provider, Source, served
from azexec.token import decode

TOKEN = make_token(lifetime=7200, appid="11111111-2222-4333-8444-555555555555")


class Live:
    """A started identity server, and what COMMAND would be told about it."""

    def __init__(self, part: IdentityServer, env: dict[str, str]) -> None:
        self.part = part
        self.env = env
        assert part.server is not None
        self.server: Server = part.server
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
    provider = Provider(
        served(TOKEN, decode(TOKEN, "test")),
        source=Source(None, None, 10),
        tenant=TENANT,
        verify=True,
        running=set(),
    )
    part = IdentityServer(provider, tenant=TENANT, subscription=None)
    env: dict[str, str] = {}
    part.start(env)
    try:
        yield Live(part, env)
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
    assert 7000 < body["expires_in"] <= 7200
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
    import sys
    from pathlib import Path

    count = tmp_path / "count"
    mint = tmp_path / "mint.py"
    mint.write_text(
        "import sys\nsys.path.insert(0, sys.argv[1])\nfrom helpers import make_token\n"
        f"open({str(count)!r}, 'a').write('x')\nprint(make_token(lifetime=3600))\n"
    )
    stale = make_token(lifetime=300)
    provider = Provider(
        served(stale, decode(stale, "test")),
        source=Source(f"{sys.executable} {mint} {Path(__file__).parent}", None, 30),
        tenant=TENANT,
        verify=True,
        running=set(),
    )
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider.get(ARM).value)) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert count.read_text() == "x"
    assert len(results) == 100
    assert len(set(results)) == 1
    assert results[0] != stale
