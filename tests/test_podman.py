"""Real rootful podman containers get the token through host.containers.internal: `--listen podman`.

podman's bridge (podman0, 10.88.0.1) exists only while a container is
attached to it: azexec asks podman for the gateway and listens on it before
the bridge exists, so that the container it starts finds the server. podman
runs in namespaces of the suite's own (tests/podman.py), and azexec with it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import AZEXEC, make_token
from podman import IMAGE, ULIMITS, Podman
from test_containers import IMDS_CLIENT, NO_HEADER_CLIENT, SDK_CLIENT

pytestmark = [pytest.mark.slow, pytest.mark.linux_only]

TOKEN = make_token()
#: The recipe docs/usage.md gives: podman adds host.containers.internal to every container's /etc/hosts itself.
RECIPE = ["-e", "IDENTITY_ENDPOINT", "-e", "IDENTITY_HEADER"]


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    runtime = Podman()
    try:
        runtime.start()
        yield runtime
    finally:
        runtime.stop()


def _azexec(podman: Podman, *command: str, listen: str = "podman") -> subprocess.CompletedProcess[str]:
    """Run azexec --identity-server --listen podman -- COMMAND beside the suite's podman, as its user would."""
    argv = podman.inside([AZEXEC, "--token-env", "T", "--identity-server", "--listen", listen, "--", *command])
    env = {**os.environ, "T": TOKEN}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def _run(*args: str) -> list[str]:
    return ["podman", "run", "--rm", *ULIMITS, *args]


def _answer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _bridge_exists(podman: Podman) -> bool:
    done = subprocess.run(podman.inside(["ip", "link", "show", "podman0"]), capture_output=True, timeout=20)
    return done.returncode == 0


def test_podman_run_gives_the_real_sdk_the_token(podman: Podman, sdk: Path) -> None:
    """The recipe: azure-identity in a podman container gets the token via host.containers.internal, though
    podman's bridge did not exist when azexec started listening."""
    assert not _bridge_exists(podman)
    mount = ["-v", f"{sdk}:/sdk:ro", "-e", "PYTHONPATH=/sdk"]
    got = _answer(_azexec(podman, *_run(*RECIPE, *mount, IMAGE, "python3", "-c", SDK_CLIENT)))
    assert got["token"] == TOKEN
    assert got["endpoint"].startswith("host.containers.internal:")


def test_podman_run_serves_terraforms_imds_request(podman: Podman) -> None:
    """terraform's IMDS-style request from a podman container (ARM_MSI_ENDPOINT passed in) gets the token."""
    got = _answer(_azexec(podman, *_run("-e", "ARM_MSI_ENDPOINT", IMAGE, "python3", "-c", IMDS_CLIENT)))
    assert got["token"] == TOKEN


def test_a_container_without_the_header_is_refused_across_the_bridge(podman: Podman) -> None:
    """A container given the endpoint but not IDENTITY_HEADER gets a 401 and no token."""
    got = _answer(_azexec(podman, *_run("-e", "IDENTITY_ENDPOINT", IMAGE, "python3", "-c", NO_HEADER_CLIENT)))
    assert got["status"] == 401
    assert TOKEN not in got["body"]


#: A container naming the server by its address, not the name it was given: the Host rule refuses it.
WRONG_HOST_CLIENT = """
import json, os, urllib.error, urllib.request
url = os.environ["IDENTITY_ENDPOINT"].replace("host.containers.internal", "attacker.example")
request = urllib.request.Request(url + "?api-version=2019-08-01&resource=https://management.azure.com/",
                                 headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open(request, timeout=10)
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""


def test_a_foreign_host_is_refused_across_the_bridge(podman: Podman) -> None:
    """A request whose Host names another server (DNS rebinding's shape) gets a 403, though the header is right."""
    add = ["--add-host", "attacker.example:10.88.0.1"]
    got = _answer(_azexec(podman, *_run(*RECIPE, *add, IMAGE, "python3", "-c", WRONG_HOST_CLIENT)))
    assert got["status"] == 403
    assert TOKEN not in got["body"]


def test_only_the_gateway_listens_while_command_runs(podman: Podman) -> None:
    """While COMMAND runs, one listener: podman's gateway and the port, bound before the bridge exists; no wildcard."""
    done = _azexec(
        podman, "sh", "-c", 'ss -Hltn; echo "$IDENTITY_ENDPOINT"; ip link show podman0 >/dev/null 2>&1; echo $?'
    )
    assert done.returncode == 0, done.stderr
    *listeners, endpoint, bridge = done.stdout.splitlines()
    port = endpoint.split("/")[2].split(":")[1]
    assert [line.split()[3] for line in listeners] == [f"10.88.0.1:{port}"]
    assert bridge != "0"  # no bridge yet: listening ahead of it is the point
    assert "identity server listening on 10.88.0.1:" in done.stderr


def test_nothing_listens_after_the_container_exits(podman: Podman) -> None:
    """When podman run (COMMAND) exits, the listener is gone: ss shows no listener at all."""
    done = _azexec(podman, *_run(IMAGE, "true"))
    assert done.returncode == 0, done.stderr
    listening = subprocess.run(podman.inside(["ss", "-Hltn"]), capture_output=True, text=True, timeout=20)
    assert listening.stdout == ""


def test_dry_run_says_where_it_would_listen(podman: Podman) -> None:
    """--dry-run asks podman too, and says the address and the name: nothing listens."""
    argv = podman.inside(
        [AZEXEC, "--token-env", "T", "--identity-server", "--listen", "podman", "--dry-run", "--", "true"]
    )
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "T": TOKEN}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "listen on 10.88.0.1:<port>, for clients given host.containers.internal:<port>" in done.stdout
