"""The identity server's HTTP side: one address, an ephemeral port, the protocols of protocols.py.

Each protocol is served behind a path of its own that nobody can guess, with
its own secret (protocols.py has the rows, shapes.py how each reads a request
and answers). Standard library only. Every refusal is JSON: a 4xx (a 5xx makes
the SDKs retry for seconds), or for azd, once it has shown its key, a 200 whose
status is "error"; nothing is logged, and no answer holds a secret but the
token asked for.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, urlsplit

from azexec.errors import Refused
from azexec.listen import LOOPBACK, url_host
from azexec.parts.identity.protocols import APP_SERVICE_2017, Endpoint, endpoints, not_found, reaches
from azexec.parts.identity.provider import Provider
from azexec.parts.identity.shapes import MAX_BODY, Asked, error
from azexec.redact import show
from azexec.runner import DeadlineReader

#: A request that takes longer than this to arrive is cut off.
SOCKET_TIMEOUT_SECONDS = 5.0
#: The whole request head (request line and headers) must arrive within this, however it trickles in;
#: an idle keep-alive connection is closed after it too. An SDK sends its head in one write.
HEAD_SECONDS = 2.0
#: The most header lines a request may carry, and the longest line (http.client's own bounds).
MAX_HEADERS = 100
MAX_LINE = 65536
#: A header's name: RFC 9110's token characters, nothing else (no space before the colon, no folding).
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Linux's IP_FREEBIND (linux/in.h), which Python names from 3.12 only.
_IP_FREEBIND = 15
#: Connections served at once; one more is closed at once (never waited for: the accept loop must not block).
MAX_CONNECTIONS = 256


class Server(ThreadingHTTPServer):
    """An HTTP server on one address that knows its secrets, its provider and the Host names it answers to."""

    daemon_threads = True
    # Nothing waits for a connection's thread at exit: COMMAND's exit ends serving, whatever clients do.
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self, provider: Provider, *, address: str = LOOPBACK, advertised: str | None = None, ahead: bool = False
    ) -> None:
        if ":" in address:
            self.address_family = socket.AF_INET6
        #: Bind ADDRESS before any interface has it (Linux's IP_FREEBIND): a bridge made when a container starts.
        self.ahead = ahead
        #: Written to by stop(): wakes the accept loop at once (serve_forever's loop would look only every poll).
        #: Made first: a failed bind calls server_close(), which closes it.
        self.waker = os.pipe()
        super().__init__((address, 0), Handler)
        self.provider = provider
        self.port = self.server_address[1]
        #: Each protocol's endpoint: its path, its secret, whether it is offered.
        self.endpoints = endpoints()
        listening = f"{url_host(address)}:{self.port}".lower()
        #: The Host headers served: the name clients were given, and the address with the port.
        self.hosts: tuple[str, ...]
        if advertised is not None:
            self.hosts = (f"{url_host(advertised).lower()}:{self.port}", listening)
        elif address == LOOPBACK:
            self.hosts = (listening, f"localhost:{self.port}")
        else:
            self.hosts = (listening,)
        #: Where COMMAND's clients find the server, and the host in it.
        self.host = advertised or address
        self.base = f"http://{url_host(self.host)}:{self.port}"
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        #: Set when COMMAND has exited: nothing more is answered.
        self.stopping = threading.Event()

    def serve(self) -> None:
        """Accept connections until stop(), woken by a connection or by stop() alone, never by a timer."""
        import selectors

        # Non-blocking: a connection reset between select() and accept() must not stall the loop in accept().
        self.socket.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self.waker[0], selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self.handle_request()  # the listener is non-blocking: this never waits

    def stop(self) -> None:
        """Answer nothing more, and wake the accept loop so that it ends now (server_close() closes the listener)."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            os.write(self.waker[1], b"\0")

    def server_close(self) -> None:
        """Close the listener and the waker."""
        super().server_close()
        for fd in self.waker:
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def legacy(self) -> Endpoint:
        """App Service's 2017 protocol, which --az-login offers an older az."""
        return self.endpoints[APP_SERVICE_2017]

    def served(self) -> dict[str, str]:
        """Return what COMMAND is given to find each protocol served from the start (placeholders() in a preview)."""
        return {
            name: value
            for endpoint in self.endpoints.values()
            if endpoint.protocol.always and reaches(endpoint.protocol, self.host)
            for name, value in endpoint.variables(self.base).items()
        }

    def secrets(self) -> tuple[str, ...]:
        """Return what a client must hold to be served, at any endpoint: the random part of each path, each secret."""
        return tuple(secret for endpoint in self.endpoints.values() for secret in endpoint.secrets())

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse lookup of the address (seconds, on a machine with no DNS)."""
        if self.ahead:
            self.socket.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", _IP_FREEBIND), 1)
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


class Handler(BaseHTTPRequestHandler):
    """Answer one client; every answer is JSON."""

    server: Server
    #: The request line as read (http.server's own, set before parse_request).
    raw_requestline: bytes
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

    def parse_request(self) -> bool:
        """Read the request line and headers, strictly (400 for anything ambiguous); False once refused.

        http.server's own parse hands the head to the email package's parser, most of a request's cost here;
        an SDK's head is a few plain lines. Refused, where http.server would guess: a request line of other
        than three words (HTTP/0.9), a version other than 1.0 or 1.1, a header line without a name and a
        colon, or folded onto the previous one (obsolete, and a way to smuggle).
        """
        self.command = None  # type: ignore[assignment]  # http.server's own: None until the line is read
        #: Each header's values by its name in lower case: what the checks read (an email Message looks slowly).
        self.fields: dict[str, list[str]] = {}
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(400)
            return False
        self.command, path, self.request_version = words
        # As http.server does (gh-87389): //path is a path, not a host.
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        self.close_connection = self.request_version != "HTTP/1.1"
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE or _ == MAX_HEADERS:
                self.send_error(431)
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                self.send_error(400)
                return False
            text = value.strip(b" \t\r\n").decode("iso-8859-1")
            self.fields.setdefault(name.decode("ascii").lower(), []).append(text)
        connection = self._field("Connection").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self._field("Expect").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def do_GET(self) -> None:
        """Serve the token, or refuse with a reason, in the shape of the protocol asked."""
        if self.server.stopping.is_set():  # COMMAND has exited: nothing more is served
            self.close_connection = True
            return
        try:
            endpoint, parts = self._admitted()
        except Refused as e:
            if self._field("Content-Length", "0").strip() != "0":
                self.close_connection = True  # its body is left unread: it must not be taken for a request
            self._send(e.status, error(e.status, e.message))
            return
        shape = endpoint.protocol.shape
        provider = self.server.provider
        try:
            asked: Asked = shape.ask(parts.query, self._body())
            provider.check_identity(dict(asked.identity))
            if asked.tenant is not None:
                provider.check_tenant(asked.tenant)
            answer = provider.get(asked.resource)
        except Refused as e:
            self._send(*shape.refusal(e))
            return
        self._send(200, shape.answer(answer, asked.resource, provider.clock()))

    do_POST = do_GET

    def _refuse_method(self) -> None:
        self._send(405, error(405, f"{show(self.command)} is not served; ask with GET (azd: POST)"))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = _refuse_method

    def _admitted(self) -> tuple[Endpoint, SplitResult]:
        """Check where the request comes from, how it is framed, which endpoint it asks and its secret."""
        parts = self._check_framing()
        endpoint = next((e for e in self.server.endpoints.values() if e.serves(parts.path)), None)
        if endpoint is None:
            raise Refused(not_found(), 404)
        if self.command != endpoint.protocol.shape.method:
            raise Refused(f"{self.command} is not served here; ask with {endpoint.protocol.shape.method}", 405)
        endpoint.admit(self._field)
        return endpoint, parts

    def _field(self, name: str, default: str = "") -> str:
        """Return the first value of header NAME (any case), or DEFAULT."""
        values = self.fields.get(name.lower())
        return values[0] if values else default

    def _check_framing(self) -> SplitResult:
        """Refuse a request from elsewhere (Host, Origin) or framed to smuggle another; return its target."""
        hosts = self.fields.get("host", [])
        if len(hosts) > 1:
            raise Refused("send one Host header", 400)
        if not hosts or hosts[0].strip().lower() not in self.server.hosts:
            raise Refused(f"the Host header must be {' or '.join(self.server.hosts)}", 403)
        if "origin" in self.fields:
            raise Refused("requests from web pages are not served", 403)
        if "transfer-encoding" in self.fields:
            # Only a Content-Length frames a body here: anything else could hide the next request. Hang up.
            self.close_connection = True
            raise Refused("send a body with a Content-Length, not a Transfer-Encoding", 400)
        length = self._field("Content-Length", "0").strip()
        if not length.isdigit() or (self.command == "GET" and int(length) != 0):
            # A body on a GET would be read as the next request on this connection: refuse, and hang up.
            self.close_connection = True
            raise Refused("a GET carries no body", 400)
        if int(length) > MAX_BODY:
            self.close_connection = True
            raise Refused(f"the body is larger than {MAX_BODY} bytes", 413)
        parts = urlsplit(self.path)
        if (parts.scheme or parts.netloc) and parts.netloc.lower() not in self.server.hosts:
            raise Refused("an absolute request target must name this server", 400)
        return parts

    def _body(self) -> bytes:
        """Read the request's body (its Content-Length, checked), by the head's deadline moved on by HEAD_SECONDS."""
        length = int(self._field("Content-Length", "0"))
        if not length:
            return b""
        self.head.deadline = time.monotonic() + HEAD_SECONDS
        try:
            data = self.rfile.read(length)
        except (TimeoutError, OSError):
            data = b""
        if len(data) != length:
            self.close_connection = True
            raise Refused("the body did not arrive in time", 408)
        return data

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer http.server's own errors (bad request lines, huge headers) as JSON 4xx, never 5xx."""
        status = code if 400 <= code < 500 else (405 if code == 501 else 400)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(status, error(status, "the request is malformed"))

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a path holds a secret."""

    def _send(self, status: int, body: dict[str, Any]) -> None:
        """Answer with BODY as JSON: head and body in one write (one system call, one packet)."""
        data = json.dumps(body).encode()
        self.connection.settimeout(SOCKET_TIMEOUT_SECONDS)  # the head's deadline is not the answer's
        close = b"Connection: close\r\n" if self.close_connection else b""
        head = b"%s %d %s\r\nServer: azexec\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            self.protocol_version.encode(),
            status,
            self.responses.get(status, ("",))[0].encode(),
            len(data),
        )
        answer = head + b"Cache-Control: no-store\r\n" + close + b"\r\n"
        self.wfile.write(answer + data if self.command != "HEAD" else answer)
