"""Real containers get the token through host.docker.internal: docker run and docker compose, as the README says.

A dockerd of the suite's own runs in a network namespace (tests/docker.py);
azexec runs in that namespace too, so `--listen docker` finds its docker0.
Inside the containers: the real azure-identity (copied from this suite's
wheels) speaking the App Service protocol, and terraform's IMDS-style request.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerd import IMAGE, Docker
from fakearm import self_signed
from helpers import ARM, AZ_VERSION, AZEXEC, SUBSCRIPTION, TENANT, az_bin, make_token
from netns import Network

pytestmark = [pytest.mark.slow, pytest.mark.linux_only]

TOKEN = make_token()
#: What the README's recipe passes into the container.
RECIPE = ["-e", "IDENTITY_ENDPOINT", "-e", "IDENTITY_HEADER", "--add-host", "host.docker.internal:host-gateway"]

#: The real SDK in the container: DefaultAzureCredential picks managed identity from the two variables.
SDK_CLIENT = """
import json, os
from azure.identity import DefaultAzureCredential
token = DefaultAzureCredential().get_token("https://management.azure.com/.default")
print(json.dumps({"token": token.token, "endpoint": os.environ["IDENTITY_ENDPOINT"].split("/")[2]}))
"""

#: terraform azurerm's request (ARM_MSI_ENDPOINT, Metadata: true), from the standard library.
IMDS_CLIENT = f"""
import json, os, urllib.request
url = os.environ["ARM_MSI_ENDPOINT"] + "?api-version=2018-02-01&resource={ARM}"
request = urllib.request.Request(url, headers={{"Metadata": "true"}})
with urllib.request.build_opener(urllib.request.ProxyHandler({{}})).open(request, timeout=10) as answer:
    print(json.dumps({{"token": json.load(answer)["access_token"]}}))
"""

#: A container started without the header: what it gets from the endpoint it was somehow told.
NO_HEADER_CLIENT = """
import json, os, urllib.error, urllib.request
url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com/"
try:
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=10)
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    """The suite's dockerd, with IMAGE imported; stopped and removed after the module."""
    daemon = Docker()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def _azexec(docker: Docker, *command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run azexec --identity-server --listen docker -- COMMAND in the daemon's namespace, as a user on that host."""
    argv = Network.inside(docker.namespace, [AZEXEC, "--token-env", "T", "--identity-server", "--listen", "docker"])
    return subprocess.run(
        [*argv, "--", *command], capture_output=True, text=True, env=docker.env(T=TOKEN), cwd=cwd, timeout=180
    )


def _answer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_docker_run_gives_the_real_sdk_the_token(docker: Docker, sdk: Path) -> None:
    """The README's docker run recipe: azure-identity in the container gets the token via host.docker.internal."""
    mount = ["-v", f"{sdk}:/sdk:ro", "-e", "PYTHONPATH=/sdk"]
    got = _answer(_azexec(docker, "docker", "run", "--rm", *RECIPE, *mount, IMAGE, "python3", "-c", SDK_CLIENT))
    assert got["token"] == TOKEN
    assert got["endpoint"].startswith("host.docker.internal:")


def test_docker_run_serves_terraforms_imds_request(docker: Docker) -> None:
    """terraform's IMDS-style request from a container (ARM_MSI_ENDPOINT passed in) gets the token."""
    recipe = ["-e", "ARM_MSI_ENDPOINT", "--add-host", "host.docker.internal:host-gateway"]
    got = _answer(_azexec(docker, "docker", "run", "--rm", *recipe, IMAGE, "python3", "-c", IMDS_CLIENT))
    assert got["token"] == TOKEN


def test_a_container_without_the_header_is_refused(docker: Docker) -> None:
    """A second container given the endpoint but not IDENTITY_HEADER gets a 401 and no token."""
    recipe = ["-e", "IDENTITY_ENDPOINT", "--add-host", "host.docker.internal:host-gateway"]
    got = _answer(_azexec(docker, "docker", "run", "--rm", *recipe, IMAGE, "python3", "-c", NO_HEADER_CLIENT))
    assert got["status"] == 401
    assert TOKEN not in got["body"]


#: A client as the SDKs are: it honours the proxy variables (urllib's default opener does); says what happened.
ENV_CLIENT = """
import json, os, socket, urllib.error, urllib.request
url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com/"
request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
try:
    with urllib.request.urlopen(request, timeout=5) as answer:
        print(json.dumps({"token": json.load(answer)["access_token"]}))
except (urllib.error.URLError, OSError) as e:
    reason = getattr(e, "reason", e)
    print(json.dumps({"error": type(reason).__name__, "text": str(reason)}))
"""


def test_without_add_host_the_name_does_not_resolve(docker: Docker) -> None:
    """docs/usage.md's first trouble: no --add-host, and host.docker.internal is no name in the container."""
    recipe = ["-e", "IDENTITY_ENDPOINT", "-e", "IDENTITY_HEADER"]
    got = _answer(_azexec(docker, "docker", "run", "--rm", *recipe, IMAGE, "python3", "-c", ENV_CLIENT))
    assert got["error"] == "gaierror"
    assert got["text"].endswith(("Name or service not known", "Temporary failure in name resolution"))


@pytest.mark.parametrize("passed", [False, True], ids=["proxy alone", "with NO_PROXY"])
def test_a_proxy_in_the_container_takes_the_request_unless_no_proxy_is_passed(docker: Docker, passed: bool) -> None:
    """docs/usage.md's proxy trouble: a proxy docker put in the container gets the request (here a dead one: the
    client fails); with -e NO_PROXY -e no_proxy, as the docs advise, the token comes."""
    # A dead proxy inside the test's own namespace: docker0's address, a port nothing listens on.
    recipe = [*RECIPE, "-e", "HTTP_PROXY=http://172.17.0.1:9", "-e", "http_proxy=http://172.17.0.1:9"]
    if passed:
        recipe += ["-e", "NO_PROXY", "-e", "no_proxy"]
    got = _answer(_azexec(docker, "docker", "run", "--rm", *recipe, IMAGE, "python3", "-c", ENV_CLIENT))
    assert got.get("token") == (TOKEN if passed else None), got


def test_compose_passes_the_endpoint_through_environment(docker: Docker, sdk: Path, tmp_path: Path) -> None:
    """The README's compose recipe (environment: pass-through, extra_hosts), on compose's own network."""
    compose = {
        "services": {
            "app": {
                "image": IMAGE,
                "environment": ["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "PYTHONPATH=/sdk"],
                "extra_hosts": ["host.docker.internal:host-gateway"],
                "volumes": [f"{sdk}:/sdk:ro"],
                "command": ["python3", "-c", SDK_CLIENT],
            }
        }
    }
    (tmp_path / "compose.yaml").write_text(json.dumps(compose))  # JSON is YAML
    compose_run = ["docker-compose", "-f", "compose.yaml", "-p", "azexec", "run", "--rm", "-T", "app"]
    done = _azexec(docker, *compose_run, cwd=tmp_path)
    try:
        got = _answer(done)
    finally:
        docker.docker("network", "rm", "azexec_default", check=False)
    assert got["token"] == TOKEN


def test_only_docker0_listens_while_command_runs(docker: Docker) -> None:
    """While COMMAND runs, ss shows one listener in the host's network: docker0's address and the port, no wildcard."""
    done = _azexec(docker, "sh", "-c", 'ss -Hltn; echo "$IDENTITY_ENDPOINT"')
    assert done.returncode == 0, done.stderr
    *listeners, endpoint = done.stdout.splitlines()
    port = endpoint.split("/")[2].split(":")[1]
    assert [line.split()[3] for line in listeners] == [f"172.17.0.1:{port}"]


def test_nothing_listens_after_the_container_exits(docker: Docker) -> None:
    """When docker run (COMMAND) exits, the listener on docker0 is gone: ss shows no listener at all."""
    done = _azexec(docker, "docker", "run", "--rm", IMAGE, "true")
    assert done.returncode == 0, done.stderr
    assert Network.listening(docker.namespace) == []


#: The devcontainer CLI tests/node/package.json pins (installed by scripts/install-test-tools).
DEVCONTAINER = Path(__file__).resolve().parent / "node" / "node_modules" / ".bin" / "devcontainer"


def test_a_devcontainer_gets_the_endpoint_through_remote_env(docker: Docker, sdk: Path, tmp_path: Path) -> None:
    """The README's devcontainer recipe (runArgs, remoteEnv from localEnv): devcontainer exec's SDK gets the token."""
    config = {
        "image": IMAGE,
        "runArgs": ["--add-host=host.docker.internal:host-gateway"],
        "mounts": [f"source={sdk},target=/sdk,type=bind,readonly"],
        "remoteEnv": {
            "IDENTITY_ENDPOINT": "${localEnv:IDENTITY_ENDPOINT}",
            "IDENTITY_HEADER": "${localEnv:IDENTITY_HEADER}",
            "PYTHONPATH": "/sdk",
        },
    }
    workspace = tmp_path / "workspace"
    (workspace / ".devcontainer").mkdir(parents=True)
    (workspace / ".devcontainer" / "devcontainer.json").write_text(json.dumps(config))
    # As a user would: the container is started (once), then each run execs in it under azexec.
    up = subprocess.run(
        [str(DEVCONTAINER), "up", "--workspace-folder", str(workspace)],
        capture_output=True,
        text=True,
        env=docker.env(),
        timeout=180,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        run_in = [str(DEVCONTAINER), "exec", "--workspace-folder", str(workspace), "python3", "-c", SDK_CLIENT]
        got = _answer(_azexec(docker, *run_in))
    finally:
        label = f"label=devcontainer.local_folder={workspace}"
        for container in docker.docker("ps", "-aq", "--filter", label).stdout.split():
            docker.docker("rm", "-f", container)
    assert got["token"] == TOKEN
    assert got["endpoint"].startswith("host.docker.internal:")


def test_az_in_a_container_logs_in_through_the_same_endpoint(docker: Docker, tmp_path: Path) -> None:
    """The documented way for az in a container: az login --identity (2.91.0, the real one) gets azexec's token."""
    venv = az_bin(AZ_VERSION).parent
    home = next(line for line in (venv / "pyvenv.cfg").read_text().splitlines() if line.startswith("home"))
    python = Path(home.split("=", 1)[1].strip()).parent  # the Python the venv was made with, mounted where it was
    self_signed(tmp_path)  # cert.pem and key.pem, mounted at /tls for the fake Resource Manager
    driver = Path(__file__).resolve().parent / "incontainer" / "az_identity_login.py"
    mounts = ["-v", f"{python}:{python}:ro", "-v", f"{venv}:{venv}:ro", "-v", f"{tmp_path}:/tls:ro"]
    mounts += ["-v", f"{driver}:/az_identity_login.py:ro"]
    command = ["python3", "/az_identity_login.py", str(venv / "bin" / "az"), TENANT, SUBSCRIPTION]
    got = _answer(_azexec(docker, "docker", "run", "--rm", *RECIPE, *mounts, IMAGE, *command))
    assert got == {"subscriptions": [SUBSCRIPTION], "token": TOKEN}
