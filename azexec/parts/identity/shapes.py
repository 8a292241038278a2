"""How each protocol's client names what it wants and reads the answer: one shape per family of protocols.

The managed-identity protocols (App Service, IMDS, App Service 2017) ask with a
GET whose query names the resource, and read a token, or a refusal as a 4xx.
azd's external authentication asks with a POST whose JSON body names scopes
(and perhaps a tenant), and reads every answer it should understand as a 200
with a "status": azd shows any other HTTP status only as "unexpected status
code N" (Azure/azure-dev, cli/azd/pkg/auth/remote_credential.go). Pure
functions: the handler does the I/O, the provider the tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from azexec import resources
from azexec.errors import Refused
from azexec.parts.identity.provider import IDENTITY_PARAMETERS
from azexec.redact import show
from azexec.say import PREFIX
from azexec.token import Accepted

#: The longest query string a request may carry.
MAX_QUERY = 4096
#: The largest body azd's request may have: scopes and a tenant are a few hundred bytes.
MAX_BODY = 16 << 10
#: The one version of azd's protocol spoken (its answer's shape is this version's).
AZD_API_VERSION = "2023-07-12-preview"
#: What a whole resource's scope ends with; the resource is what precedes it.
DEFAULT_SCOPE = "/.default"

ERROR_NAMES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "content_too_large",
    414: "uri_too_long",
    431: "request_header_fields_too_large",
}


class Asked(NamedTuple):
    """What a request asks for: a resource, and the tenant (azd) or the identity (managed identity) it names."""

    resource: str
    tenant: str | None = None
    identity: Mapping[str, str] = {}


class Shape(NamedTuple):
    """How a protocol's requests are read and answered."""

    #: The method its clients ask with.
    method: str
    #: Read what is asked from the query string and the body (b"" when none came); raise Refused.
    ask: Callable[[str, bytes], Asked]
    #: The answer's status and body for a token.
    answer: Callable[[Accepted, str, float], dict[str, Any]]
    #: The answer's status and body for a refusal, once the request has shown the protocol's secret.
    refusal: Callable[[Refused], tuple[int, dict[str, Any]]]


def error(status: int, message: str) -> dict[str, Any]:
    """The body of a 4xx: msal-python reads statusCode and message, msal-node error and error_description."""
    return {
        "error": ERROR_NAMES.get(status, "invalid_request"),
        "error_description": message,
        "statusCode": status,
        "message": PREFIX + message,
    }


def _resource_from_query(query: str, body: bytes) -> Asked:
    """A managed-identity request: ?resource=… (exactly one, well formed), and any identity it names."""
    if len(query) > MAX_QUERY:
        raise Refused("the query string is too long", 414)
    parsed = parse_qs(query)
    values = parsed.get("resource", [])
    if len(values) != 1 or not values[0].strip():
        raise Refused("name exactly one resource, e.g. ?resource=https://management.azure.com/", 400)
    problem = resources.invalid(values[0])
    if problem is not None:
        raise Refused(f"{problem}, e.g. ?resource=https://management.azure.com/", 400)
    identity = {name: found[0] for name in IDENTITY_PARAMETERS if (found := parsed.get(name))}
    return Asked(values[0], identity=identity)


def _managed_identity_token(answer: Accepted, resource: str, now: float) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": answer.token.reveal(),
        "expires_on": str(answer.expires_at),
        "expires_in": max(0, int(answer.expires_at - now)),
        "resource": resource,
        "token_type": "Bearer",
    }
    claims = answer.claims
    if claims is not None and claims.not_before is not None:
        body["not_before"] = str(claims.not_before)
    if claims is not None and claims.app:
        body["client_id"] = claims.app
    return body


def _managed_identity_refusal(refused: Refused) -> tuple[int, dict[str, Any]]:
    return refused.status, error(refused.status, refused.message)


def _scopes_from_body(query: str, body: bytes) -> Asked:
    """An azd request: {"scopes": ["<resource>/.default"], "tenantId": "…"} (tenantId left out when empty)."""
    from azexec.bounded import load_json

    versions = parse_qs(query[:MAX_QUERY]).get("api-version", [])
    if versions != [AZD_API_VERSION]:
        asked = show(versions[0]) if versions else "none"
        raise Refused(
            f"azexec speaks api-version {AZD_API_VERSION} of azd's protocol, not {asked}; use an azd that does"
        )
    try:
        request = load_json(body, limit=MAX_BODY)
    except (ValueError, UnicodeDecodeError):
        request = None
    if not isinstance(request, dict):
        raise Refused('the body must be a JSON object, {"scopes": ["https://management.azure.com//.default"]}')
    scopes, tenant = request.get("scopes"), request.get("tenantId")
    if not isinstance(scopes, list) or len(scopes) != 1 or not isinstance(scopes[0], str):
        raise Refused('name exactly one scope, e.g. {"scopes": ["https://management.azure.com//.default"]}')
    if tenant is not None and not isinstance(tenant, str):
        raise Refused("tenantId must be a string")
    scope = scopes[0]
    if not scope.endswith(DEFAULT_SCOPE) or not scope[: -len(DEFAULT_SCOPE)]:
        raise Refused(
            f"azexec serves a whole resource's scope, RESOURCE{DEFAULT_SCOPE}, not {show(scope)}: "
            "a managed identity's token is for all of a resource"
        )
    resource = scope[: -len(DEFAULT_SCOPE)]
    problem = resources.invalid(resource)
    if problem is not None:
        raise Refused(f"{problem}, e.g. https://management.azure.com//.default")
    return Asked(resource, tenant=tenant or None)


def _azd_token(answer: Accepted, resource: str, now: float) -> dict[str, Any]:
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(answer.expires_at))  # RFC 3339, UTC
    return {"status": "success", "token": answer.token.reveal(), "expiresOn": expires}


def _azd_refusal(refused: Refused) -> tuple[int, dict[str, Any]]:
    """Always a 200: azd shows a status of "error" with its message, and any other HTTP status only as a number."""
    return 200, {"status": "error", "code": "GetTokenError", "message": PREFIX + refused.message}


MANAGED_IDENTITY = Shape("GET", _resource_from_query, _managed_identity_token, _managed_identity_refusal)
AZD_SHAPE = Shape("POST", _scopes_from_body, _azd_token, _azd_refusal)
