"""The identity server: a resident part serving the token through a local managed-identity endpoint.

Two protocols on 127.0.0.1 (or the one address --listen names, for containers)
and an ephemeral port, each behind a path of its own that nobody can guess:

- App Service (api-version 2019-08-01), which every Azure SDK and az use when
  IDENTITY_ENDPOINT and IDENTITY_HEADER are set: the header must match;
- IMDS style, for terraform's azurerm provider (ARM_MSI_ENDPOINT): `Metadata: true`;
- App Service 2017-09-01 (MSI_ENDPOINT, a `secret` header), only for az 2.72.0 and
  older (msrestazure's managed identity), and only when --az-login asks for it:
  see LegacyOffer. It is never advertised to COMMAND otherwise.

Standard library only. Every refusal is a 4xx with a JSON body (a 5xx makes the
SDKs retry for seconds); nothing is logged, and no answer holds a secret but
the token asked for.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from azexec import resources
from azexec.errors import PartFailed, Refused
from azexec.listen import DOCKER, LOOPBACK, Listen, resolve, url_host
from azexec.parts import Added, Context, Preview
from azexec.parts.provider import IDENTITY_PARAMETERS, Provider
from azexec.redact import Secret, show
from azexec.runner import DeadlineReader
from azexec.token import Accepted

#: Variables that would make a client pick another managed-identity protocol.
OTHER_PROTOCOLS = (
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "APPSETTING_WEBSITE_SITE_NAME",  # sends msrestazure (az before 2.73.0) down App Service's 2017 path
)
#: Variables that would make a client use another credential, or ask for another identity, than the token
#: azexec serves: removed from COMMAND's environment, as a stale subscription is.
OTHER_CREDENTIALS = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "ARM_CLIENT_ID",
    "ARM_CLIENT_ID_FILE_PATH",
    "ARM_CLIENT_SECRET",
    "ARM_CLIENT_SECRET_FILE_PATH",
    "ARM_CLIENT_CERTIFICATE",
    "ARM_CLIENT_CERTIFICATE_PATH",
    "ARM_CLIENT_CERTIFICATE_PASSWORD",
    "ARM_OIDC_TOKEN",
    "ARM_OIDC_TOKEN_FILE_PATH",
    "ARM_OIDC_REQUEST_TOKEN",
    "ARM_OIDC_REQUEST_URL",
    "ARM_USE_OIDC",
    "ARM_USE_AKS_WORKLOAD_IDENTITY",
)
#: A request that takes longer than this to arrive is cut off.
SOCKET_TIMEOUT_SECONDS = 5.0
#: The whole request head (request line and headers) must arrive within this, however it trickles in;
#: an idle keep-alive connection is closed after it too. An SDK sends its head in one write.
HEAD_SECONDS = 2.0
#: How often the accept loop looks whether it should stop (at most this delay at exit).
POLL_SECONDS = 0.05
#: Connections served at once; one more is closed at once (never waited for: the accept loop must not block).
MAX_CONNECTIONS = 256
#: The longest query string a request may carry.
MAX_QUERY = 4096

ERROR_NAMES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    414: "uri_too_long",
    431: "request_header_fields_too_large",
}


class Server(ThreadingHTTPServer):
    """An HTTP server on one address that knows its secrets, its provider and the Host names it answers to."""

    daemon_threads = True
    # Nothing waits for a connection's thread at exit: COMMAND's exit ends serving, whatever clients do.
    block_on_close = False
    request_queue_size = 128

    def __init__(self, provider: Provider, *, address: str = LOOPBACK, advertised: str | None = None) -> None:
        if ":" in address:
            self.address_family = socket.AF_INET6
        super().__init__((address, 0), Handler)
        self.provider = provider
        self.port = self.server_address[1]
        self.app_service_path = "/" + secrets.token_urlsafe(24)
        self.imds_path = "/" + secrets.token_urlsafe(24)
        self.header = secrets.token_urlsafe(32)
        self.legacy = LegacyOffer()
        listening = f"{url_host(address)}:{self.port}".lower()
        #: The Host headers served: the name clients were given, and the address with the port.
        self.hosts: tuple[str, ...]
        if advertised is not None:
            self.hosts = (f"{url_host(advertised).lower()}:{self.port}", listening)
        elif address == LOOPBACK:
            self.hosts = (listening, f"localhost:{self.port}")
        else:
            self.hosts = (listening,)
        #: Where COMMAND's clients find the server.
        self.base = f"http://{url_host(advertised or address)}:{self.port}"
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        #: Set when COMMAND has exited: nothing more is answered.
        self.stopping = threading.Event()

    def secrets(self) -> tuple[str, ...]:
        """Return what a client must hold to be served: the header, and the random part of each path."""
        paths = (self.app_service_path, self.imds_path, self.legacy.path)
        return (self.header, self.legacy.secret, *(path.lstrip("/") for path in paths))

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse lookup of the address (seconds, on a machine with no DNS)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve on a thread of its own, at most MAX_CONNECTIONS at once; close one more at once."""
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Print nothing: a broken client is no news, and a traceback could show a path."""


class LegacyOffer:
    """The App Service 2017-09-01 protocol, which az before 2.73.0 speaks (msrestazure's webapp path).

    Off until --az-login offers it to its az login; kept on for COMMAND only if that
    az used it (an older az: every az process COMMAND runs asks the same way).
    The path and the `secret` header are secrets of their own.
    """

    def __init__(self) -> None:
        self.path = "/" + secrets.token_urlsafe(24)
        self.secret = secrets.token_urlsafe(32)
        self.offered = threading.Event()
        self.used = threading.Event()

    def variables(self, base: str) -> dict[str, str]:
        """What msrestazure reads: it takes the webapp path only when APPSETTING_WEBSITE_SITE_NAME is set."""
        return {
            "MSI_ENDPOINT": base + self.path,
            "MSI_SECRET": self.secret,
            "APPSETTING_WEBSITE_SITE_NAME": "azexec",
        }


class Handler(BaseHTTPRequestHandler):
    """Answer one client; every answer is JSON."""

    server: Server
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_SECONDS
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add 40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server_version = "azexec"
    sys_version = ""

    def setup(self) -> None:
        """Read the request through a deadline (a byte every second must not keep a thread forever)."""
        super().setup()
        self.head = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self.head)

    def handle_one_request(self) -> None:
        """Serve one request, whose head must arrive within HEAD_SECONDS."""
        self.head.deadline = time.monotonic() + HEAD_SECONDS
        super().handle_one_request()

    def do_GET(self) -> None:
        """Serve the token, or refuse with a reason."""
        if self.server.stopping.is_set():  # COMMAND has exited: nothing more is served
            self.close_connection = True
            return
        try:
            resource = self._checked_resource()
            query = parse_qs(urlsplit(self.path).query)
            self.server.provider.check_identity(
                {name: values[0] for name in IDENTITY_PARAMETERS if (values := query.get(name))}
            )
            answer = self.server.provider.get(resource)
        except Refused as e:
            self._send(e.status, _error(e.status, e.message))
            return
        self._send(200, _token(answer, resource, self.server.provider.clock()))

    def _refuse_method(self) -> None:
        self._send(405, _error(405, f"{show(self.command)} is not served; ask with GET"))

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = _refuse_method

    def _check_framing(self) -> SplitResult:
        """Refuse a request from elsewhere (Host, Origin) or framed to smuggle another; return its target."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            raise Refused("send one Host header", 400)
        if not hosts or hosts[0].strip().lower() not in self.server.hosts:
            raise Refused(f"the Host header must be {' or '.join(self.server.hosts)}", 403)
        if "Origin" in self.headers:
            raise Refused("requests from web pages are not served", 403)
        if "Transfer-Encoding" in self.headers or self.headers.get("Content-Length", "0").strip() != "0":
            # A body on a GET would be read as the next request on this connection: refuse, and hang up.
            self.close_connection = True
            raise Refused("a GET carries no body", 400)
        parts = urlsplit(self.path)
        if (parts.scheme or parts.netloc) and parts.netloc.lower() not in self.server.hosts:
            raise Refused("an absolute request target must name this server", 400)
        return parts

    def _checked_resource(self) -> str:
        """Check where the request comes from and what it carries; return the resource asked for."""
        parts = self._check_framing()
        if len(parts.query) > MAX_QUERY:
            raise Refused("the query string is too long", 414)
        if _same(parts.path, self.server.app_service_path):
            if not _same(self.headers.get("X-IDENTITY-HEADER", ""), self.server.header):
                raise Refused("the X-IDENTITY-HEADER header is missing or wrong; use the IDENTITY_HEADER value", 401)
        elif _same(parts.path, self.server.imds_path):
            if self.headers.get("Metadata", "").lower() != "true":
                raise Refused("the Metadata: true header is missing", 400)
        elif self.server.legacy.offered.is_set() and _same(parts.path.rstrip("/"), self.server.legacy.path):
            # msrestazure asks for MSI_ENDPOINT + "/?resource=…&api-version=2017-09-01".
            if not _same(self.headers.get("secret", ""), self.server.legacy.secret):
                raise Refused("the secret header is missing or wrong; use the MSI_SECRET value", 401)
            self.server.legacy.used.set()
        else:
            raise Refused("no such endpoint; use IDENTITY_ENDPOINT or ARM_MSI_ENDPOINT as given", 404)
        values = parse_qs(parts.query).get("resource", [])
        if len(values) != 1 or not values[0].strip():
            raise Refused("name exactly one resource, e.g. ?resource=https://management.azure.com/", 400)
        problem = resources.invalid(values[0])
        if problem is not None:
            raise Refused(f"{problem}, e.g. ?resource=https://management.azure.com/", 400)
        return values[0]

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer http.server's own errors (bad request lines, huge headers) as JSON 4xx, never 5xx."""
        status = code if 400 <= code < 500 else (405 if code == 501 else 400)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(status, _error(status, "the request is malformed"))

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a path holds a secret."""

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.connection.settimeout(SOCKET_TIMEOUT_SECONDS)  # the head's deadline is not the answer's
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _same(given: str, secret: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())


def _error(status: int, message: str) -> dict[str, Any]:
    """The body of a refusal: msal-python reads statusCode and message, msal-node error and error_description."""
    return {
        "error": ERROR_NAMES.get(status, "invalid_request"),
        "error_description": message,
        "statusCode": status,
        "message": f"azexec: {message}",
    }


def _token(answer: Accepted, resource: str, now: float) -> dict[str, Any]:
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


#: The default listener: 127.0.0.1, its clients given that address.
LOOPBACK_ONLY = Listen()


class IdentityServer:
    """A resident part: serve the token from before COMMAND starts until it exits."""

    def __init__(
        self,
        provider: Provider,
        *,
        tenant: str | None,
        subscription: str | None,
        listen: Listen = LOOPBACK_ONLY,
        announce: Callable[[str], None] = lambda line: print(f"azexec: {line}", file=sys.stderr),
    ) -> None:
        self.provider = provider
        self.tenant = tenant
        self.subscription = subscription
        self.listen = listen
        #: Says, once, where a listener beyond loopback listens (never a secret).
        self.announce = announce
        self.server: Server | None = None
        self.thread: threading.Thread | None = None

    def preview(self, env: Mapping[str, str]) -> Preview:
        """Say what COMMAND's environment would get, the endpoint's secrets as placeholders."""
        base = f"http://{url_host(self.listen.name())}:<port>"
        steps: tuple[str, ...] = ()
        failure = None
        address = None if self.listen.address == DOCKER else self.listen.address
        if self.listen.beyond_loopback():
            try:
                address = resolve(self.listen.address)
                steps = (f"listen on {self._where(address, '<port>')}",)
            except PartFailed as e:
                failure = str(e)
        added = self._variables(
            env, base + "/<random path>", "<random, 32 bytes>", base + "/<another random path>", address
        )
        return Preview("identity server", env=tuple(added.items()), steps=steps, failure=failure)

    def start(self, context: Context) -> Added:
        """Listen, and point COMMAND's managed-identity clients at the endpoint."""
        address = resolve(self.listen.address)
        self.provider.serve(context)
        try:
            self.server = server = Server(self.provider, address=address, advertised=self.listen.advertised_name())
        except OSError as e:
            hint = "name an address of this machine" if address != LOOPBACK else None
            raise PartFailed(f"the identity server cannot listen on {address}: {e.strerror or e}", hint) from None
        # Every secret handed out is masked (--mask, token commands' stderr) as the tokens are: the header,
        # the paths (the IMDS endpoint's only secret is its path; terraform's debug log prints the URL), and the
        # 2017 protocol's path and secret, should --az-login offer it.
        for value in server.secrets():
            context.secrets.add(Secret(value, "the identity server"))
        if self.listen.beyond_loopback():
            # An explicit choice, said once: where, and to whom; never the path or the header.
            self.announce(f"identity server listening on {self._where(address, str(server.port))}")
        base = server.base
        env = self._variables(
            context.env, base + server.app_service_path, server.header, base + server.imds_path, address
        )
        # Serving starts now, before COMMAND: a client may ask the moment it starts.
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
        self.thread.start()
        return Added(env=tuple(env.items()))

    def _where(self, address: str, port: str) -> str:
        """Say where the server listens and the name it is advertised under."""
        where = f"{url_host(address)}:{port}"
        name = self.listen.advertised_name()
        return f"{where}, for clients given {url_host(name)}:{port}" if name not in (None, address) else where

    def _variables(
        self, parent: Mapping[str, str], endpoint: str, header: str, imds: str, address: str | None
    ) -> dict[str, str | None]:
        """Return what COMMAND's environment gets (None: removed), in PARENT's environment.

        ADDRESS is the one listened on (None: not known yet, docker0's in a preview).
        """
        env: dict[str, str | None] = dict.fromkeys((*OTHER_PROTOCOLS, *OTHER_CREDENTIALS))
        env["IDENTITY_ENDPOINT"] = endpoint
        env["IDENTITY_HEADER"] = header
        # Clients read one spelling or the other (az and Python the lower case first): both get the union.
        given = [entry.strip() for name in ("NO_PROXY", "no_proxy") for entry in parent.get(name, "").split(",")]
        bypass = ",".join(dict.fromkeys(entry for entry in [*given, *self._unproxied(address)] if entry))
        env["NO_PROXY"] = env["no_proxy"] = bypass
        # Always: a parent's AZURE_TOKEN_CREDENTIALS=dev would make DefaultAzureCredential skip the server.
        env["AZURE_TOKEN_CREDENTIALS"] = "ManagedIdentityCredential"  # noqa: S105 - a credential's name
        env["ARM_USE_MSI"] = "true"
        env["ARM_MSI_ENDPOINT"] = imds
        # A value inherited from the parent (terraform reads them) must not pair with this token: set or removed.
        env["ARM_TENANT_ID"] = self.tenant
        env["ARM_SUBSCRIPTION_ID"] = self.subscription
        return env

    def _unproxied(self, address: str | None) -> list[str]:
        """Return what NO_PROXY must name so that no client sends a request (its header, its path) to a proxy:
        the host clients are given and the address listened on, an IPv6 one bare (Python, Go) and bracketed
        (node's URL.hostname)."""
        hosts = [self.listen.name(), *([address] if address else [])]
        if LOOPBACK in hosts:
            hosts.append("localhost")
        return [spelling for host in hosts for spelling in ((host, f"[{host}]") if ":" in host else (host,))]

    def offer_legacy(self) -> dict[str, str]:
        """Start serving the 2017-09-01 protocol (for --az-login's az login); return the variables that find it."""
        assert self.server is not None, "offered before the server started"
        self.server.legacy.offered.set()
        return self.server.legacy.variables(self.server.base)

    def keep_legacy(self) -> bool:
        """Keep serving the 2017-09-01 protocol if a client used it (an older az); otherwise stop; say which."""
        assert self.server is not None, "asked before the server started"
        if self.server.legacy.used.is_set():
            return True
        self.server.legacy.offered.clear()
        return False

    def running(self) -> None:
        """Nothing to do: the server is already serving."""

    def stop(self, code: int | None) -> None:
        """Stop listening, and kill any token command still running for a request."""
        if self.server is not None:
            self.server.stopping.set()
            self.server.shutdown()
            self.server.server_close()
        self.provider.stop()
