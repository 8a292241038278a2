"""The protocols the identity server speaks, one row each: managed identity's three, and azd's.

A row says how a client asks (an unguessable path of its own, the header that
carries its secret, or the header it must send besides, and the shape of its
request and answer: shapes.py), what COMMAND's environment gets so that clients
find it, and whether it is served from the start or only once offered. The
server looks a request's row up by its path; COMMAND's environment is written
from the rows. Adding a protocol is a row (and, if its requests and answers
differ, a shape).
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from typing import NamedTuple

from azexec.errors import Refused
from azexec.parts.identity.shapes import AZD_SHAPE, MANAGED_IDENTITY, Shape


class Protocol(NamedTuple):
    """One protocol: how its clients ask, and how they find the server."""

    name: str
    #: The variable that gives clients the endpoint: the server's base URL and this row's path.
    endpoint_variable: str
    #: The header whose value must be this row's secret; None: the path is the only secret.
    secret_header: str | None = None
    #: The variable that gives clients that secret.
    secret_variable: str | None = None
    #: A header clients must send besides, and its value (IMDS's `Metadata: true`), else a 400.
    marker: tuple[str, str] | None = None
    #: Variables set beside the endpoint, for clients that need them to choose this protocol.
    extra: tuple[tuple[str, str], ...] = ()
    #: Served from the start; False: only once offered (and said to COMMAND only if a client used it).
    always: bool = True
    #: Whether a trailing slash on the path is the same endpoint (msrestazure asks for MSI_ENDPOINT + "/?…").
    slash: bool = False
    #: How requests are read and answered.
    shape: Shape = MANAGED_IDENTITY
    #: What clients put after the endpoint's path (azd asks for AZD_AUTH_ENDPOINT + "/token").
    suffix: str = ""
    #: What precedes the secret in its header (azd sends "Authorization: Bearer KEY").
    scheme: str = ""
    #: Given to COMMAND only when its clients reach the server at a loopback IP address: azd refuses plain
    #: http anywhere else (localhost included), and would fail where another credential could serve.
    loopback_only: bool = False
    #: Variables removed from COMMAND's environment besides this row's own (settings of another server's).
    foreign: tuple[str, ...] = ()


#: App Service, api-version 2019-08-01: every Azure SDK and az 2.73.0 on.
APP_SERVICE = Protocol("App Service", "IDENTITY_ENDPOINT", "X-IDENTITY-HEADER", "IDENTITY_HEADER")
#: IMDS style, for terraform's azurerm provider (go-azure-sdk): `Metadata: true`, the path its only secret.
IMDS = Protocol("IMDS", "ARM_MSI_ENDPOINT", marker=("Metadata", "true"), extra=(("ARM_USE_MSI", "true"),))
#: App Service, api-version 2017-09-01: az 2.72.0 and older (msrestazure), which takes this path only when
#: APPSETTING_WEBSITE_SITE_NAME is set. Offered to --az-login's az login alone.
APP_SERVICE_2017 = Protocol(
    "App Service 2017",
    "MSI_ENDPOINT",
    "secret",
    "MSI_SECRET",
    extra=(("APPSETTING_WEBSITE_SITE_NAME", "azexec"),),
    always=False,
    slash=True,
)
#: azd's external authentication (what VS Code serves azd), api-version 2023-07-12-preview: a POST to
#: AZD_AUTH_ENDPOINT + "/token" with "Authorization: Bearer AZD_AUTH_KEY". An inherited AZD_AUTH_CERT (VS Code
#: serves https) would make azd refuse this http endpoint: removed.
AZD = Protocol(
    "azd",
    "AZD_AUTH_ENDPOINT",
    "Authorization",
    "AZD_AUTH_KEY",
    shape=AZD_SHAPE,
    suffix="/token",
    scheme="Bearer ",
    loopback_only=True,
    foreign=("AZD_AUTH_CERT",),
)
#: Every protocol, in the order a request's path is looked up.
PROTOCOLS = (APP_SERVICE, IMDS, AZD, APP_SERVICE_2017)


class Endpoint:
    """A protocol as one server serves it: its unguessable path and secret, whether offered, whether used."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.path = "/" + secrets.token_urlsafe(24)
        self.secret = secrets.token_urlsafe(32) if protocol.secret_header else None
        self.offered = threading.Event()
        self.used = threading.Event()
        if protocol.always:
            self.offered.set()

    def serves(self, path: str) -> bool:
        """Tell whether PATH is this endpoint's, while it is offered (compared in constant time)."""
        if not self.offered.is_set():
            return False
        return _same(path.rstrip("/") if self.protocol.slash else path, self.path + self.protocol.suffix)

    def admit(self, header: Callable[[str], str]) -> None:
        """Refuse a request without this protocol's secret header (401) or marker (400); note that it was used.

        HEADER gives a request header's value ("" when absent).
        """
        protocol = self.protocol
        given = header(protocol.secret_header) if protocol.secret_header else ""
        if protocol.secret_header and self.secret and not _same(given, protocol.scheme + self.secret):
            use = f"{protocol.scheme}and the" if protocol.scheme else "the"
            wrong = f"the {protocol.secret_header} header is missing or wrong"
            raise Refused(f"{wrong}; use {use} {protocol.secret_variable} value", 401)
        if protocol.marker and header(protocol.marker[0]).lower() != protocol.marker[1]:
            raise Refused(f"the {protocol.marker[0]}: {protocol.marker[1]} header is missing", 400)
        if not self.used.is_set():  # set() takes the Event's lock every time
            self.used.set()

    def variables(self, base: str) -> dict[str, str]:
        """Return what a client needs to find this endpoint on the server at BASE."""
        found = {self.protocol.endpoint_variable: base + self.path}
        if self.protocol.secret_variable and self.secret:
            found[self.protocol.secret_variable] = self.secret
        return {**found, **dict(self.protocol.extra)}

    def secrets(self) -> tuple[str, ...]:
        """Return what a client must hold to be served here: the random part of the path, and the secret."""
        return (self.path.lstrip("/"), *((self.secret,) if self.secret else ()))


def endpoints() -> dict[Protocol, Endpoint]:
    """Return a new endpoint for every protocol, each with secrets of its own."""
    return {protocol: Endpoint(protocol) for protocol in PROTOCOLS}


def variables() -> tuple[str, ...]:
    """Return every protocol's variables, and what would take its clients elsewhere: COMMAND inherits none of
    them (those of the protocols it is given are then set)."""
    return tuple(
        name
        for protocol in PROTOCOLS
        for name in (protocol.endpoint_variable, protocol.secret_variable, *dict(protocol.extra), *protocol.foreign)
        if name
    )


def reaches(protocol: Protocol, host: str) -> bool:
    """Tell whether PROTOCOL's clients take a server they are given at HOST (a name or an address)."""
    if not protocol.loopback_only:
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def placeholders(base: str, host: str) -> dict[str, str]:
    """Return what COMMAND is given to find each protocol served from the start, its secrets as placeholders.

    BASE is the server's URL as its clients are given it, HOST the name or address in it.
    """
    given: dict[str, str] = {}
    for protocol in PROTOCOLS:
        if protocol.always and reaches(protocol, host):
            given[protocol.endpoint_variable] = base + "/<random path>"
            if protocol.secret_variable:
                given[protocol.secret_variable] = "<random, 32 bytes>"
            given.update(protocol.extra)
    return given


def not_found() -> str:
    """Say where clients should have asked: the endpoints COMMAND is given from the start."""
    given = ", ".join(protocol.endpoint_variable for protocol in PROTOCOLS if protocol.always)
    return f"no such endpoint; use {given} as given"


def _same(given: str, secret: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())
