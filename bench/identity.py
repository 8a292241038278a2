"""Throughput and latency of --identity-server, and the resident azexec's peak memory.

Usage: python3 bench/identity.py [--requests N] [--clients N] [--azexec PATH]

azexec serves a cached token; COMMAND is a client with CLIENTS threads, each
on a keep-alive connection, sending REQUESTS in all (the App Service protocol,
as the SDKs send it). It prints requests per second, p50 and p99 latency, and
azexec's peak RSS (VmHWM, read from /proc while COMMAND runs), and the same
client against two floors: a bare socket loop, and http.server answering a
fixed body (the design's framework, doing nothing else). Then a refresh
storm: 100 clients ask at the moment the token needs refreshing, and the
token command's runs are counted (it should run once). Standard library and
pyjwt only; loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENT = r"""
import http.client, json, os, statistics, sys, threading, time
from urllib.parse import urlsplit
total, clients = int(sys.argv[1]), int(sys.argv[2])
url = urlsplit(os.environ["IDENTITY_ENDPOINT"])
path = url.path + "?api-version=2019-08-01&resource=https://management.azure.com/"
headers = {"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"], "Metadata": "true"}
latencies, lock = [], threading.Lock()
def worker(count):
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    mine = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        mine.append(time.perf_counter() - started)
    connection.close()
    with lock:
        latencies.extend(mine)
threads = [threading.Thread(target=worker, args=(total // clients,)) for _ in range(clients)]
began = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - began
latencies.sort()
peak = next(l.split()[1] for l in open(f"/proc/{os.getppid()}/status") if l.startswith("VmHWM"))
print(json.dumps({"rps": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
                  "p99": latencies[int(len(latencies) * 0.99)] * 1000, "peak_kib": int(peak)}))
"""

STORM = r"""
import http.client, os, sys, threading
from urllib.parse import urlsplit
url = urlsplit(os.environ["IDENTITY_ENDPOINT"])
path = url.path + "?resource=https://management.azure.com/"
barrier, statuses = threading.Barrier(100), []
def ask():
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    barrier.wait()
    connection.request("GET", path, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
    statuses.append(connection.getresponse().status)
threads = [threading.Thread(target=ask) for _ in range(100)]
for t in threads: t.start()
for t in threads: t.join()
print(sorted(set(statuses)))
"""

#: Mints a token; the first one (azexec's own, at start) is the last argv[2] seconds of an hour's life,
#: later ones live a day.
MINT = r"""
import os, sys, time, jwt
first = not os.path.exists(sys.argv[1])
open(sys.argv[1], "a").write("x")
now, left = int(time.time()), int(sys.argv[2])
issued = now - (3600 - left) if first and left < 3600 else now
claims = {"aud": "https://management.azure.com/", "tid": "00000000-0000-4000-8000-000000000001",
          "iat": issued, "nbf": issued, "exp": now + (left if first else 86400)}
print(jwt.encode(claims, "bench-key-not-a-secret-0123456789abcdef", algorithm="HS256"))
"""

#: The floor: the least a server on this machine can do per request, standard library only. It reads a
#: request head (up to the blank line; no parsing beyond that) and answers a fixed JSON body, keep-alive,
#: a thread per connection. It then runs CLIENT against itself, as COMMAND would.
FLOOR = r"""
import os, socket, subprocess, sys, threading
BODY = b'{"access_token": "x", "expires_on": "0", "resource": "r", "token_type": "Bearer"}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = conn.makefile("rb")
    with conn, reader:
        while True:
            line = reader.readline(65537)
            if not line:
                return
            while line not in (b"\r\n", b"\n", b""):
                line = reader.readline(65537)
            conn.sendall(ANSWER)
listener = socket.create_server(("127.0.0.1", 0))
def accept():
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
env = dict(os.environ, IDENTITY_ENDPOINT=f"http://127.0.0.1:{listener.getsockname()[1]}/floor", IDENTITY_HEADER="x")
sys.exit(subprocess.run([sys.executable, *sys.argv[1:]], env=env).returncode)
"""

#: The same fixed answer through the standard library's http.server (the design's framework): threads,
#: keep-alive, one write, no Nagle. What is between it and the floor is http.server's; above it, azexec's.
HTTP_FLOOR = r"""
import os, subprocess, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = b'{"access_token": "x", "expires_on": "0", "resource": "r", "token_type": "Bearer"}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        self.wfile.write(ANSWER)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ, IDENTITY_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}/floor", IDENTITY_HEADER="x")
sys.exit(subprocess.run([sys.executable, *sys.argv[1:]], env=env).returncode)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--azexec", default=str(Path(sys.executable).with_name("azexec")))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="azexec-identity-"))
    (work / "client.py").write_text(CLIENT)
    (work / "storm.py").write_text(STORM)
    (work / "mint.py").write_text(MINT)
    (work / "floor.py").write_text(FLOOR)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZEXEC_", "AZURE_", "IDENTITY_"))}

    count = work / "count"
    mint = f"{sys.executable} {work / 'mint.py'} {count}"
    result = subprocess.run(
        [args.azexec, "-q", "--identity-server", "--token-cmd", f"{mint} 86400", "--",
         sys.executable, str(work / "client.py"), str(args.requests), str(args.clients)],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout)
    (work / "http_floor.py").write_text(HTTP_FLOOR)
    floor, http_floor = (
        json.loads(
            subprocess.run(
                [sys.executable, str(work / server), str(work / "client.py"), str(args.requests), str(args.clients)],
                env=env, capture_output=True, text=True, timeout=600, check=True,
            ).stdout
        )
        for server in ("floor.py", "http_floor.py")
    )  # fmt: skip
    print(
        f"{args.requests} requests, {args.clients} clients, {os.cpu_count()} cores: "
        f"{figures['rps']:.0f} requests/s, p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms, "
        f"azexec peak RSS {figures['peak_kib'] / 1024:.1f} MiB"
    )
    print(
        f"floor (fixed answer, same client, same run): {floor['rps']:.0f} requests/s, p50 {floor['p50']:.2f} ms, "
        f"p99 {floor['p99']:.2f} ms; azexec/floor: p50 {figures['p50'] / floor['p50']:.2f}x, "
        f"p99 {figures['p99'] / floor['p99']:.2f}x, requests/s {figures['rps'] / floor['rps']:.2f}x"
    )
    print(
        f"http.server floor (the same answer through http.server): {http_floor['rps']:.0f} requests/s, "
        f"p50 {http_floor['p50']:.2f} ms, p99 {http_floor['p99']:.2f} ms; azexec/it: "
        f"p50 {figures['p50'] / http_floor['p50']:.2f}x, p99 {figures['p99'] / http_floor['p99']:.2f}x, "
        f"requests/s {figures['rps'] / http_floor['rps']:.2f}x"
    )

    storm_count = work / "storm-count"
    mint = f"{sys.executable} {work / 'mint.py'} {storm_count}"
    started = time.monotonic()
    # Tokens with 9 minutes left: the first request of the storm must refresh, the other 99 wait for it.
    result = subprocess.run(
        [args.azexec, "-q", "--identity-server", "--token-cmd", f"{mint} 540", "--",
         sys.executable, str(work / "storm.py")],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    runs = len(storm_count.read_text()) - 1  # the first run is azexec's own, before COMMAND
    print(
        f"refresh storm: 100 clients, statuses {result.stdout.strip()}, token command run {runs} time(s) "
        f"for them, {time.monotonic() - started:.2f} s in all"
    )


if __name__ == "__main__":
    main()
