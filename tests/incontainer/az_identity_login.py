"""Inside a container: az login --identity against azexec's endpoint, then az's token; print both as JSON.

Run by tests/test_containers.py with the real az mounted in. Azure Resource
Manager is a fake, served here on the container's own loopback over TLS (the
certificate is mounted at /tls), in a cloud registered the way az writes one.
Usage: az_identity_login.py AZ TENANT SUBSCRIPTION
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AZ, TENANT, SUBSCRIPTION = sys.argv[1:4]


class Arm(BaseHTTPRequestHandler):
    """GET /subscriptions lists SUBSCRIPTION; anything else is an empty list."""

    def do_GET(self) -> None:
        listed = self.path.split("?")[0].rstrip("/").lower() == "/subscriptions"
        subscription = {"id": f"/subscriptions/{SUBSCRIPTION}", "subscriptionId": SUBSCRIPTION, "tenantId": TENANT}
        subscription.update(displayName="fake", state="Enabled")
        data = json.dumps({"value": [subscription] if listed else []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Arm)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/tls/cert.pem", "/tls/key.pem")
server.socket = context.wrap_socket(server.socket, server_side=True)
threading.Thread(target=server.serve_forever, daemon=True).start()

config = "/tmp/azure-config"
os.makedirs(config)
with open(f"{config}/clouds.config", "w") as clouds:
    clouds.write(
        "[FakeCloud]\nendpoint_active_directory = https://login.fake.invalid\n"
        "endpoint_active_directory_resource_id = https://management.core.windows.net/\n"
        f"endpoint_resource_manager = https://127.0.0.1:{server.server_address[1]}/\n"
    )
with open(f"{config}/config", "w") as settings:
    settings.write("[cloud]\nname = FakeCloud\n\n[core]\noutput = json\n")
env = {**os.environ, "AZURE_CONFIG_DIR": config, "REQUESTS_CA_BUNDLE": "/tls/cert.pem"}
env["AZURE_CORE_COLLECT_TELEMETRY"] = "0"


def az(*args: str) -> str:
    done = subprocess.run([AZ, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        sys.exit(f"az {args[0]} {args[1]} failed: {done.stderr.strip()}")
    return done.stdout


login = json.loads(az("login", "--identity"))
token = az("account", "get-access-token", "--query", "accessToken", "-o", "tsv").strip()
print(json.dumps({"subscriptions": [entry["id"] for entry in login], "token": token}))
