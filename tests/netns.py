"""Network namespaces a test makes and removes itself: a host with a bridge, and guests joined to it by veth pairs.

The host namespace plays the machine azexec runs on, its bridge docker0 (an
address containers reach); each guest plays a container. Nothing is bound or
configured in the namespace the suite runs in: every address lives inside a
namespace made here and deleted on exit (which deletes its veth ends too).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

#: The bridge's subnet inside the host namespace; only ever configured inside the namespaces made here.
SUBNET = "10.213.0"
_made = itertools.count()

#: A stdlib client: GET URL with the headers given as JSON; print the status and the JSON body, or the
#: connection's error. Bounded: one request, a 10 s timeout.
CLIENT = """
import json, sys, urllib.error, urllib.request
url, headers = sys.argv[1], json.loads(sys.argv[2])
request = urllib.request.Request(url, headers=headers)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(request, timeout=10) as answer:
        print(json.dumps({"status": answer.status, "body": json.load(answer)}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": json.load(e)}))
except OSError as e:
    reason = getattr(e, "reason", e)
    print(json.dumps({"status": None, "error": type(reason).__name__}))
"""


def ip(*args: str) -> None:
    """Run ip(8); fail the test with its message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr.strip()}"


class Network:
    """A host namespace with a bridge at SUBNET.1, and GUESTS namespaces at SUBNET.2, .3, …; removed on exit."""

    def __init__(self, guests: int = 2) -> None:
        prefix = f"azx{os.getpid()}n{next(_made)}"
        self.host = prefix + "h"
        self.guests = [f"{prefix}g{number}" for number in range(guests)]
        self.address = f"{SUBNET}.1"
        self.made: list[str] = []

    def __enter__(self) -> Network:
        try:
            self._make()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _make(self) -> None:
        ip("netns", "add", self.host)
        self.made.append(self.host)
        ip("-n", self.host, "link", "set", "lo", "up")
        ip("-n", self.host, "link", "add", "br0", "type", "bridge")
        ip("-n", self.host, "addr", "add", f"{self.address}/24", "dev", "br0")
        ip("-n", self.host, "link", "set", "br0", "up")
        for number, guest in enumerate(self.guests):
            ip("netns", "add", guest)
            self.made.append(guest)
            ip("-n", guest, "link", "set", "lo", "up")
            ip("-n", self.host, "link", "add", f"v{number}", "type", "veth", "peer", "name", "eth0", "netns", guest)
            ip("-n", self.host, "link", "set", f"v{number}", "master", "br0", "up")
            ip("-n", guest, "addr", "add", f"{SUBNET}.{number + 2}/24", "dev", "eth0")
            ip("-n", guest, "link", "set", "eth0", "up")

    def __exit__(self, *exc: object) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20, check=False)
        self.made.clear()

    @staticmethod
    def inside(namespace: str, argv: Sequence[str]) -> list[str]:
        """Return ARGV to run in NAMESPACE's network (nsenter changes nothing else: /sys stays mounted)."""
        return ["nsenter", f"--net=/run/netns/{namespace}", *argv]

    def get(self, namespace: str, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """GET URL from NAMESPACE; return {"status", "body"}, or {"status": None, "error"} if it cannot connect."""
        argv = self.inside(namespace, [sys.executable, "-c", CLIENT, url, json.dumps(headers or {})])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    @staticmethod
    def listening(namespace: str) -> list[str]:
        """Return the local address:port of every TCP socket listening in NAMESPACE, as ss(8) shows them."""
        argv = Network.inside(namespace, ["ss", "-Hltn"])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True)
        return [line.split()[3] for line in done.stdout.splitlines() if line.strip()]
