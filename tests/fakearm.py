"""A fake Azure Resource Manager over TLS on 127.0.0.1: the one the tests and bench/azlogin.py use.

It answers what az needs (the subscriptions, the resource groups), records every
request, and can be hostile: answer the first listings with given bytes, trickle
every answer a byte at a time, or never answer. Standard library only (the
benchmark imports it too); tests/incontainer/ keeps a copy of its own, as it runs
on a container's Python without the suite's modules.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: How a hostile fake answers: at once (not hostile), a byte every TRICKLE_SECONDS, or never.
HOW = ("answers", "trickles", "silent")
TRICKLE_SECONDS = 0.5
#: How long a hostile fake holds a connection at most: its loops are bounded in time.
HOLD_SECONDS = 60.0


def self_signed(where: Path) -> tuple[Path, Path]:
    """Make a self-signed certificate for 127.0.0.1 in WHERE; return the certificate and key files."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def subscription(sid: str, tenant: str, *, managed_by: str | None = None) -> dict[str, Any]:
    """One subscription as Resource Manager lists it (MANAGED_BY: a tenant managing it through Lighthouse)."""
    entry: dict[str, Any] = {
        "id": f"/subscriptions/{sid}",
        "subscriptionId": sid,
        "tenantId": tenant,
        "displayName": sid[-4:],
        "state": "Enabled",
    }
    if managed_by is not None:
        entry["managedByTenants"] = [{"tenantId": managed_by}]
    return entry


class FakeArm:
    """Resource Manager as az sees it: LISTED subscriptions and one resource group each, each request recorded."""

    def __init__(self, certificate: Path, key: Path, listed: list[dict[str, Any]], *, how: str = "answers") -> None:
        assert how in HOW, how
        self.listed = listed
        self.how = how
        self.requests: list[dict[str, str]] = []
        #: Raw bodies answered to the first listings of subscriptions, in order (a hostile Resource Manager).
        self.first_listings: list[bytes] = []
        #: Set once a request has arrived whole.
        self.asked = threading.Event()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def answer(self, path: str) -> tuple[int, bytes]:
        """Return the status and body for a GET of PATH."""
        path = path.split("?")[0].rstrip("/").lower()
        if path == "/subscriptions":
            if self.first_listings:
                return 200, self.first_listings.pop(0)
            return 200, json.dumps({"value": self.listed}).encode()
        if path.endswith("/resourcegroups"):
            return 200, json.dumps(
                {"value": [{"id": f"{path}/rg-fake", "name": "rg-fake", "location": "westeurope"}]}
            ).encode()
        return 404, json.dumps({"error": {"code": "NotFound", "message": "not faked"}}).encode()

    def bearer_hashes(self) -> set[str]:
        """The sha256 of every bearer token ARM was sent (the metadata probe of `cloud register` sends none)."""
        return {
            hashlib.sha256(r["authorization"].removeprefix("Bearer ").encode()).hexdigest()
            for r in self.requests
            if r["authorization"]
        }

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def _handler(arm: FakeArm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arm.requests.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
            arm.asked.set()
            status, data = arm.answer(self.path)
            head = (
                f"HTTP/1.0 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            try:
                if arm.how == "answers":
                    self.wfile.write(head + data)
                    return
                deadline = time.monotonic() + HOLD_SECONDS
                for byte in head + data if arm.how == "trickles" else b"":
                    if arm.stopping.wait(TRICKLE_SECONDS) or time.monotonic() > deadline:
                        return
                    self.wfile.write(bytes([byte]))
                arm.stopping.wait(max(0.0, deadline - time.monotonic()))
            except OSError:  # the client gave up: what a hostile server is for
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
