"""Throughput and latency of --identity-server, and the resident azexec's peak memory.

Usage: python3 bench/identity.py [--requests N] [--clients N] [--azexec PATH]

azexec serves a cached token; COMMAND is a client with CLIENTS threads, each
on a keep-alive connection, sending REQUESTS in all (the App Service protocol,
as the SDKs send it). It prints requests per second, p50 and p99 latency, and
azexec's peak RSS (VmHWM, read from /proc while COMMAND runs). Then a refresh
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

#: Mints a token; the first one lives argv[2] seconds (azexec's own, at start), later ones a day.
MINT = r"""
import os, sys, time, jwt
first = not os.path.exists(sys.argv[1])
open(sys.argv[1], "a").write("x")
now = int(time.time())
claims = {"aud": "https://management.azure.com/", "tid": "00000000-0000-4000-8000-000000000001",
          "iat": now, "nbf": now, "exp": now + (int(sys.argv[2]) if first else 86400)}
print(jwt.encode(claims, "bench-key-not-a-secret-0123456789abcdef", algorithm="HS256"))
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZEXEC_", "AZURE_", "IDENTITY_"))}

    count = work / "count"
    mint = f"{sys.executable} {work / 'mint.py'} {count}"
    result = subprocess.run(
        [args.azexec, "-q", "--identity-server", "--token-cmd", f"{mint} 86400", "--",
         sys.executable, str(work / "client.py"), str(args.requests), str(args.clients)],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout)
    print(
        f"{args.requests} requests, {args.clients} clients, {os.cpu_count()} cores: "
        f"{figures['rps']:.0f} requests/s, p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms, "
        f"azexec peak RSS {figures['peak_kib'] / 1024:.1f} MiB"
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
