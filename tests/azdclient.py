"""azd's external-authentication client, written from azd's own source: no azd binary is on any registry here.

What `azd auth token --output json` does when AZD_AUTH_ENDPOINT and AZD_AUTH_KEY
are set, step for step as Azure/azure-dev has it:

- the transport rule (cli/azd/cmd/external_auth.go, buildExternalAuthConfiguration):
  the endpoint's scheme is http, https, unix or npipe; plain http only for a
  loopback IP address (Go's net.ParseIP(host).IsLoopback(): never "localhost");
  AZD_AUTH_KEY required; AZD_AUTH_CERT only with https;
- the request (cli/azd/pkg/auth/remote_credential.go, GetToken): POST
  {endpoint}/token?api-version=2023-07-12-preview, Content-Type: application/json,
  Authorization: Bearer {key}, body {"scopes": [...], "tenantId": ...} with
  tenantId left out when empty (Go's omitempty); no proxy for a loopback host
  (Go's ProxyFromEnvironment);
- the answer: any status but 200 is "unexpected status code N"; the body is
  decoded as JSON; "success" takes token and expiresOn (Go's time.Time: RFC 3339),
  and Go panics on either missing (a nil pointer); "error" reports code and
  message (and panics on either missing); any other status is "unexpected status".

Usage: azdclient.py [COMMAND]... [--scope SCOPE]... [--tenant-id TENANT]. Prints what
`azd auth token --output json` prints ({"token", "expiresOn"}), or azd's error
on stderr with exit 1; a panic exits 2, as Go's does.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import re
import sys
from urllib.parse import urlsplit

API_VERSION = "2023-07-12-preview"
#: Go's time.Time.UnmarshalJSON: RFC 3339, fractional seconds optional, a zone required.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


class AzdError(Exception):
    """What azd prints as its error."""


def configuration(env: dict[str, str]) -> tuple[str, str] | None:
    """Return the endpoint and key azd would use, None when external authentication is off; else raise."""
    endpoint, key, cert = env.get("AZD_AUTH_ENDPOINT", ""), env.get("AZD_AUTH_KEY", ""), env.get("AZD_AUTH_CERT", "")
    if not endpoint and not key:
        return None
    scheme = urlsplit(endpoint).scheme
    if scheme not in ("", "http", "https", "unix", "npipe"):
        raise AzdError(f"invalid AZD_AUTH_ENDPOINT value {endpoint!r}: unsupported scheme {scheme!r}")
    if scheme == "http":
        host = urlsplit(endpoint).hostname or ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AzdError(
                f"invalid AZD_AUTH_ENDPOINT value {endpoint!r}: http is accepted only for loopback IP endpoints"
            )
    if endpoint and not key:
        raise AzdError("AZD_AUTH_KEY is required when AZD_AUTH_ENDPOINT is set")
    if cert and scheme != "https":
        raise AzdError(
            f"invalid AZD_AUTH_ENDPOINT value {endpoint!r}: scheme must be 'https' when certificate is provided"
        )
    if scheme != "http":
        raise AzdError(f"this client speaks plain http only, not {scheme!r}")
    return endpoint, key


def get_token(endpoint: str, key: str, scopes: list[str], tenant: str) -> dict[str, str]:
    """RemoteCredential.GetToken: return {"token", "expiresOn"}, or raise AzdError with azd's words."""
    body = {"scopes": scopes, **({"tenantId": tenant} if tenant else {})}
    target = urlsplit(f"{endpoint}/token?api-version={API_VERSION}")
    connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
    try:
        connection.request(
            "POST",
            f"{target.path}?{target.query}",
            body=json.dumps(body, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        response = connection.getresponse()
        data = response.read()
    except OSError as e:
        raise AzdError(f"RemoteCredential: making request: {e}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise AzdError(f"RemoteCredential: unexpected status code: {response.status}")
    try:
        answer = json.loads(data)
    except ValueError as e:
        raise AzdError(f"RemoteCredential: decoding token response: {e}") from None
    status = answer.get("status") if isinstance(answer, dict) else None
    if status == "success":
        token, expires = answer.get("token"), answer.get("expiresOn")
        if not isinstance(token, str) or not isinstance(expires, str):
            panic("invalid memory address or nil pointer dereference (token or expiresOn missing)")
        if not RFC3339.fullmatch(expires):
            raise AzdError(f"RemoteCredential: decoding token response: parsing time {expires!r} as RFC 3339")
        return {"token": token, "expiresOn": expires}
    if status == "error":
        code, message = answer.get("code"), answer.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            panic("invalid memory address or nil pointer dereference (code or message missing)")
        raise AzdError(f"RemoteCredential: failed to acquire token: code: {code} message: {message}")
    raise AzdError(f"RemoteCredential: unexpected status: {status}")


def panic(what: str) -> None:
    print(f"panic: runtime error: {what}", file=sys.stderr)
    sys.exit(2)


def main() -> int:
    parser = argparse.ArgumentParser()
    # `auth token` prints the token; any other command (provision, deploy) asks for one first, as azd does.
    parser.add_argument("command", nargs="*")
    parser.add_argument("--scope", action="append", dest="scopes")
    parser.add_argument("--tenant-id", default="")
    args = parser.parse_args()
    try:
        found = configuration(dict(os.environ))
        if found is None:
            raise AzdError("not logged in, run `azd auth login` to login")
        answer = get_token(*found, args.scopes or ["https://management.azure.com//.default"], args.tenant_id)
    except AzdError as e:
        print(f"ERROR: fetching token: {e}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
