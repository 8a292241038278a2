"""--listen and --advertise: the identity server on one address a container reaches, never a wildcard.

The refusals are proven across a real network: azexec runs in a network
namespace with a bridge (the host and its docker0), its clients in other
namespaces joined to the bridge by veth pairs (containers). The namespaces
are made and removed by each test (tests/netns.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
from helpers import ARM, AZEXEC, TENANT, base_env, held, make_token, run, start_part
from netns import Network

from azexec.listen import Listen, check_address, check_name
from azexec.parts.identity import IdentityServer

TOKEN = make_token()
QUERY = f"?api-version=2019-08-01&resource={ARM}"
#: COMMAND: say what the identity server gave it, wait for a line on stdin (or the fixture's kill), exit 7.
REPORT_AND_WAIT = [
    "sh",
    "-c",
    'printf "%s\\n" "$IDENTITY_ENDPOINT" "$IDENTITY_HEADER" "$ARM_MSI_ENDPOINT"; read _; exit 7',
]


@pytest.mark.parametrize(
    ("address", "fine"),
    [
        ("docker", True),
        ("172.17.0.1", True),
        ("10.213.0.1", True),
        ("::1", True),
        ("fd00::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:0.0.0.0", False),
        ("224.0.0.1", False),
        ("::ffff:224.0.0.1", False),
        ("255.255.255.255", False),
        ("::ffff:255.255.255.255", False),
        ("docker0", False),
        ("", False),
    ],
)
def test_listen_takes_docker_or_one_address_never_a_wildcard(address: str, fine: bool) -> None:
    """--listen's address: the word docker or one IP address; a wildcard, multicast or broadcast address is refused."""
    assert (check_address(address) is None) is fine


@pytest.mark.parametrize(
    ("name", "fine"),
    [("host.docker.internal", True), ("gateway", True), ("172.17.0.1", True), ("a b", False), ("x/y", False)],
)
def test_advertise_takes_a_host_name_or_an_address(name: str, fine: bool) -> None:
    """--advertise's name must be a host name or an IP address: it goes into a URL and the Host rule."""
    assert (check_name(name) is None) is fine


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--identity-server", "--listen", "0.0.0.0"], "'0.0.0.0' is a wildcard address"),
        (["--identity-server", "--listen", "::"], "'::' is a wildcard address"),
        (["--listen", "127.0.0.1"], "--listen goes with --identity-server"),
        (["--identity-server", "--az-login", "--listen", "docker"], "cannot go with --listen"),
        (["--identity-server", "--advertise", "host.docker.internal"], "--advertise goes with --listen"),
    ],
    ids=["0.0.0.0", "::", "without --identity-server", "with --az-login", "--advertise alone"],
)
def test_a_listener_option_that_cannot_apply_is_a_usage_error(args: list[str], said: str) -> None:
    """Each misuse: exit 2, one line saying what is wrong, COMMAND never runs."""
    result = run("--token-env", "T", *args, "--", "sh", "-c", "echo ran", env=base_env(T=TOKEN))
    assert (result.returncode, result.stdout) == (2, "")
    assert said in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_listen_variable_is_dropped_where_it_cannot_apply() -> None:
    """AZEXEC_LISTEN set for a shell does not break --az-login-free runs without --identity-server."""
    result = run("--token-env", "T", "--", "sh", "-c", "echo ran", env=base_env(T=TOKEN, AZEXEC_LISTEN="docker"))
    assert (result.returncode, result.stdout) == (0, "ran\n")


def test_an_advertised_name_is_served_beside_the_address_and_nothing_else() -> None:
    """Listening on 127.0.0.1 as host.docker.internal (Docker Desktop's way): that Host is served, localhost not."""
    part = IdentityServer(
        held(TOKEN), tenant=TENANT, subscription=None, listen=Listen("127.0.0.1", "host.docker.internal")
    )
    env = start_part(part)
    try:
        endpoint = urlsplit(env["IDENTITY_ENDPOINT"])
        assert endpoint.hostname == "host.docker.internal"
        statuses = {}
        for host in ("host.docker.internal", "HOST.Docker.Internal", "127.0.0.1", "localhost", "attacker.example"):
            statuses[host] = _status(endpoint.port or 0, endpoint.path + QUERY, env["IDENTITY_HEADER"], host)
    finally:
        part.stop(0)
    assert statuses == {
        "host.docker.internal": 200,
        "HOST.Docker.Internal": 200,
        "127.0.0.1": 200,
        "localhost": 403,
        "attacker.example": 403,
    }


def test_an_ipv6_address_is_listened_on_and_bracketed() -> None:
    """--listen ::1: the endpoint is http://[::1]:port/…, and a client reaching it gets the token."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None, listen=Listen("::1"))
    env = start_part(part)
    try:
        endpoint = urlsplit(env["IDENTITY_ENDPOINT"])
        assert endpoint.netloc.startswith("[::1]:")
        status = _status(endpoint.port or 0, endpoint.path + QUERY, env["IDENTITY_HEADER"], "[::1]", family="::1")
    finally:
        part.stop(0)
    assert status == 200


def test_an_address_is_given_to_clients_as_urls_spell_it() -> None:
    """--listen 0:0:0:0:0:0:0:1 is ::1 in the endpoint, and a client given that endpoint is served."""
    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None, listen=Listen("0:0:0:0:0:0:0:1"))
    env = start_part(part)
    try:
        endpoint = urlsplit(env["IDENTITY_ENDPOINT"])
        status = _status(endpoint.port or 0, endpoint.path + QUERY, env["IDENTITY_HEADER"], "[::1]", family="::1")
    finally:
        part.stop(0)
    assert (endpoint.netloc.split("]")[0], status) == ("[::1", 200)


def _status(port: int, target: str, header: str, host: str, family: str = "127.0.0.1") -> int:
    import http.client

    connection = http.client.HTTPConnection(family, port, timeout=10)
    try:
        connection.request("GET", target, headers={"Host": f"{host}:{port}", "X-IDENTITY-HEADER": header})
        return connection.getresponse().status
    finally:
        connection.close()


# Across a real network: linux_only (network namespaces), and root, as CI runs.


class Serving(NamedTuple):
    """azexec serving in NETWORK's host namespace, and what its COMMAND was given."""

    network: Network
    process: subprocess.Popen[str]
    endpoint: str
    header: str
    imds: str
    port: int
    stderr_first_line: str

    def finish(self) -> tuple[int, str]:
        """Let COMMAND exit; return azexec's status and the rest of its stderr."""
        assert self.process.stdin is not None
        self.process.stdin.write("done\n")
        self.process.stdin.close()
        code = self.process.wait(timeout=30)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


@pytest.fixture
def serving() -> Iterator[Serving]:
    """azexec --identity-server --listen on the host namespace's bridge address, COMMAND waiting."""
    with Network(guests=2) as network:
        argv = Network.inside(network.host, [AZEXEC, "--token-env", "T", "--identity-server", "--listen"])
        argv += [network.address, "--", *REPORT_AND_WAIT]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        with subprocess.Popen(argv, **pipes, text=True, env=base_env(T=TOKEN)) as process:  # type: ignore[call-overload]
            try:
                assert process.stdout is not None
                assert process.stderr is not None
                endpoint, header, imds = (process.stdout.readline().strip() for _ in range(3))
                assert endpoint, process.stderr.read()
                port = urlsplit(endpoint).port
                assert port is not None
                yield Serving(network, process, endpoint, header, imds, port, process.stderr.readline())
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=30)


@pytest.mark.linux_only
def test_a_client_on_the_bridge_gets_the_token(serving: Serving) -> None:
    """A guest (a container) with IDENTITY_ENDPOINT and IDENTITY_HEADER gets the token over the bridge."""
    headers = {"X-IDENTITY-HEADER": serving.header}
    got = serving.network.get(serving.network.guests[0], serving.endpoint + QUERY, headers)
    assert (got["status"], got["body"]["access_token"]) == (200, TOKEN)


@pytest.mark.linux_only
def test_the_imds_style_request_works_over_the_bridge(serving: Serving) -> None:
    """terraform's request (ARM_MSI_ENDPOINT, Metadata: true) from a guest gets the token."""
    url = serving.imds + f"?api-version=2018-02-01&resource={ARM}"
    got = serving.network.get(serving.network.guests[0], url, {"Metadata": "true"})
    assert (got["status"], got["body"]["access_token"]) == (200, TOKEN)


@pytest.mark.linux_only
def test_a_guest_without_the_secret_header_is_refused(serving: Serving) -> None:
    """A guest that knows the endpoint but not IDENTITY_HEADER gets a 401 and no token."""
    got = serving.network.get(serving.network.guests[0], serving.endpoint + QUERY)
    assert got["status"] == 401
    assert TOKEN not in json.dumps(got)


@pytest.mark.linux_only
def test_a_second_guest_without_the_header_is_refused(serving: Serving) -> None:
    """Another container on the same bridge, not started with IDENTITY_HEADER, gets a 401."""
    got = serving.network.get(serving.network.guests[1], serving.endpoint + QUERY, {"X-IDENTITY-HEADER": "guess"})
    assert got["status"] == 401


@pytest.mark.linux_only
def test_a_guest_guessing_the_imds_path_is_refused(serving: Serving) -> None:
    """The IMDS-style path is the secret there: a guest asking the well-known IMDS path gets a 404."""
    url = f"http://{serving.network.address}:{serving.port}/metadata/identity/oauth2/token?resource={ARM}"
    got = serving.network.get(serving.network.guests[1], url, {"Metadata": "true"})
    assert got["status"] == 404


@pytest.mark.linux_only
def test_a_foreign_host_header_is_refused(serving: Serving) -> None:
    """A request naming another host (DNS rebinding) is refused, though path and header are right."""
    headers = {"X-IDENTITY-HEADER": serving.header, "Host": f"attacker.example:{serving.port}"}
    got = serving.network.get(serving.network.guests[0], serving.endpoint + QUERY, headers)
    assert got["status"] == 403


@pytest.mark.linux_only
def test_a_web_page_is_refused(serving: Serving) -> None:
    """A request carrying Origin (a browser in a guest) is refused, though path, header and Host are right."""
    headers = {"X-IDENTITY-HEADER": serving.header, "Origin": "http://attacker.example"}
    got = serving.network.get(serving.network.guests[0], serving.endpoint + QUERY, headers)
    assert got["status"] == 403
    assert TOKEN not in json.dumps(got)


@pytest.mark.linux_only
def test_the_hosts_own_loopback_does_not_answer(serving: Serving) -> None:
    """Listening on the bridge, nothing listens on the host's 127.0.0.1 at that port."""
    url = f"http://127.0.0.1:{serving.port}/" + urlsplit(serving.endpoint).path + QUERY
    got = serving.network.get(serving.network.host, url, {"X-IDENTITY-HEADER": serving.header})
    assert got == {"status": None, "error": "ConnectionRefusedError"}


@pytest.mark.linux_only
def test_only_the_named_address_listens(serving: Serving) -> None:
    """ss(8) in the host namespace shows one listener: the bridge address and the port, no wildcard."""
    assert serving.network.listening(serving.network.host) == [f"{serving.network.address}:{serving.port}"]


@pytest.mark.linux_only
def test_the_listener_is_said_once_without_its_secrets(serving: Serving) -> None:
    """One line on stderr names the address and port; neither the header nor a path nor the token."""
    code, rest = serving.finish()
    where = f"{serving.network.address}:{serving.port}"
    assert serving.stderr_first_line == f"azexec: identity server listening on {where}\n"
    assert (code, rest) == (7, "")


@pytest.mark.linux_only
def test_the_listener_is_gone_when_command_exits(serving: Serving) -> None:
    """After COMMAND exits (azexec with its status), nothing listens, and a guest's connection is refused."""
    code, _ = serving.finish()
    headers = {"X-IDENTITY-HEADER": serving.header}
    got = serving.network.get(serving.network.guests[0], serving.endpoint + QUERY, headers)
    assert (code, serving.network.listening(serving.network.host), got["status"]) == (7, [], None)


@pytest.mark.linux_only
def test_docker_without_a_docker0_bridge_is_one_line_and_125() -> None:
    """--listen docker where no docker0 exists: one line saying so and what to do; COMMAND never runs."""
    with Network(guests=0) as network:
        done = _serve_in(network.host, "--listen", "docker", "--", "sh", "-c", "echo ran")
    assert (done.returncode, done.stdout) == (125, "")
    assert done.stderr == (
        "azexec: this machine has no docker0 bridge with an IPv4 address; "
        "is dockerd running? Or name the address with --listen ADDRESS\n"
    )


@pytest.mark.linux_only
def test_the_listener_is_said_even_with_quiet() -> None:
    """-q silences warnings and notes, not where the token is served beyond loopback."""
    with Network(guests=0) as network:
        done = _serve_in(network.host, "-q", "--listen", network.address, "--", "true")
    assert done.returncode == 0
    assert done.stderr.startswith(f"azexec: identity server listening on {network.address}:")
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.linux_only
def test_the_listen_variable_works_as_the_option() -> None:
    """AZEXEC_LISTEN with --identity-server: the server listens there, as with --listen."""
    with Network(guests=0) as network:
        done = _serve_in(network.host, "--", "true", AZEXEC_LISTEN=network.address)
    assert done.returncode == 0
    assert done.stderr.startswith(f"azexec: identity server listening on {network.address}:")


def test_docker_elsewhere_than_linux_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """On macOS (Docker Desktop: no docker0 on the host) --listen docker fails with one line naming the way out."""
    from azexec import listen
    from azexec.errors import PartFailed

    monkeypatch.setattr(listen.sys, "platform", "darwin")
    with pytest.raises(PartFailed) as raised:
        listen.resolve("docker")
    assert str(raised.value) == (
        "--listen docker looks for Linux's docker0 bridge, which this system has not; "
        "with Docker Desktop, use --listen 127.0.0.1 --advertise host.docker.internal"
    )


@pytest.mark.linux_only
def test_an_address_not_of_this_machine_is_one_line_and_125() -> None:
    """--listen 10.213.0.99, which no interface has: one line, 125, COMMAND never runs."""
    with Network(guests=0) as network:
        done = _serve_in(network.host, "--listen", "10.213.0.99", "--", "sh", "-c", "echo ran")
    assert (done.returncode, done.stdout) == (125, "")
    assert done.stderr == (
        "azexec: the identity server cannot listen on 10.213.0.99: Cannot assign requested address; "
        "name an address of this machine\n"
    )


def test_the_broadcast_address_is_a_usage_error() -> None:
    """--listen 255.255.255.255, which Linux lets TCP bind: exit 2, one line, COMMAND never runs."""
    done = run("--token-env", "T", "--identity-server", "--listen", "255.255.255.255", "--", "sh", "-c", "echo ran",
               env=base_env(T=TOKEN))  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert "is the broadcast address, which no client can connect to" in done.stderr


@pytest.mark.linux_only
def test_a_subnets_broadcast_address_is_one_line_and_125() -> None:
    """--listen 10.213.0.255, the bridge's broadcast address (Linux binds it; nothing reaches it): 125, no COMMAND."""
    with Network(guests=0) as network:
        done = _serve_in(network.host, "--listen", "10.213.0.255", "--", "sh", "-c", "echo ran")
    assert (done.returncode, done.stdout) == (125, "")
    assert done.stderr == (
        "azexec: --listen 10.213.0.255 is a broadcast address of this machine, which no client can connect to; "
        "name the interface's own address (ip -4 addr shows it)\n"
    )


@pytest.mark.linux_only
def test_dry_run_shows_the_advertised_endpoint_and_the_address() -> None:
    """--dry-run --listen docker in a namespace with a docker0: host.docker.internal and docker0's address."""
    with Network(guests=0) as network:
        _docker0(network.host, "172.31.0.1")
        done = _serve_in(network.host, "--listen", "docker", "--dry-run", "--json", "--", "true")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["before_command"] == ["listen on 172.31.0.1:<port>, for clients given host.docker.internal:<port>"]
    assert report["variables"]["IDENTITY_ENDPOINT"]["value"] == "http://host.docker.internal:<port>/<random path>"


def _serve_in(namespace: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run azexec --token-env T --identity-server ARGS in NAMESPACE's network, T holding TOKEN, plus ENV."""
    argv = Network.inside(namespace, [AZEXEC, "--token-env", "T", "--identity-server", *args])
    return subprocess.run(argv, capture_output=True, text=True, env=base_env(T=TOKEN, **env), timeout=30)


def _docker0(namespace: str, address: str) -> None:
    """Give NAMESPACE a bridge named docker0 at ADDRESS, as dockerd would."""
    from netns import ip

    ip("-n", namespace, "link", "add", "docker0", "type", "bridge")
    ip("-n", namespace, "addr", "add", f"{address}/16", "dev", "docker0")


# With a proxy set: every client must reach the endpoint directly, never through the proxy.

#: A proxy that records the request line of whatever reaches it and answers 400 (a 5xx would make SDKs retry).
#: Prints its port; bounded: 60 s at most, each connection 5 s.
RECORDING_PROXY = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(8)
server.settimeout(0.5)
print(server.getsockname()[1], flush=True)
deadline = time.monotonic() + 60
with open(sys.argv[1], "a") as record:
    while time.monotonic() < deadline:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            continue
        with connection:
            connection.settimeout(5)
            head = b""
            try:
                while b"\\r\\n\\r\\n" not in head and len(head) < 65536:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                record.write(head.split(b"\\r\\n", 1)[0].decode("latin-1") + "\\n")
                record.flush()
                body = b'{"error": "proxied"}'
                connection.sendall(b"HTTP/1.1 400 Bad Request\\r\\nContent-Type: application/json\\r\\n"
                                   b"Content-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s" % (len(body), body))
            except OSError:
                pass
"""

#: The real Python SDK as COMMAND: ManagedIdentityCredential (azure-core over requests, which honours the proxy
#: variables); prints the sha256 of the token it got.
SDK_CLIENT = """
import hashlib
from azure.identity import ManagedIdentityCredential
token = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
print(hashlib.sha256(token.token.encode()).hexdigest())
"""

#: The names the namespace's clients resolve (bound over /etc/hosts in a private mount namespace).
HOSTS = "127.0.0.1 localhost host.docker.internal\n::1 localhost\n10.213.0.1 gateway.test\n"


@pytest.mark.linux_only
@pytest.mark.parametrize(
    "listener",
    [
        ["--listen", "127.0.0.2"],
        ["--listen", "::1"],
        ["--listen", "10.213.0.1", "--advertise", "gateway.test"],
        ["--listen", "127.0.0.1", "--advertise", "host.docker.internal"],
    ],
    ids=["another loopback address", "IPv6 loopback", "advertised name", "Docker Desktop's form"],
)
def test_a_proxy_never_sees_a_request_for_the_endpoint(tmp_path: Path, listener: list[str]) -> None:
    """HTTP_PROXY set: the real SDK gets the token straight from the endpoint, as advertised; the proxy sees nothing."""
    import hashlib
    import sys

    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    record = tmp_path / "proxied"
    record.touch()
    with Network(guests=0) as network:
        proxy_argv = Network.inside(network.host, [sys.executable, "-c", RECORDING_PROXY, str(record)])
        with subprocess.Popen(proxy_argv, stdout=subprocess.PIPE, text=True) as proxy:
            try:
                assert proxy.stdout is not None
                proxy_url = f"http://127.0.0.1:{proxy.stdout.readline().strip()}"
                env = {k: v for k, v in base_env(T=TOKEN).items() if not k.startswith(("IDENTITY_", "MSI_", "AZURE_"))}
                env.update(HTTP_PROXY=proxy_url, http_proxy=proxy_url, HTTPS_PROXY=proxy_url, NO_PROXY="")
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                azexec = Network.inside(network.host, [AZEXEC, "--token-env", "T", "--identity-server", *listener])
                command = [*azexec, "--", sys.executable, "-c", SDK_CLIENT]
                # /etc/hosts names the advertised hosts, in a mount namespace of this run's own.
                argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *command]  # fmt: skip
                done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
            finally:
                proxy.kill()
    assert record.read_text() == ""
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hashlib.sha256(TOKEN.encode()).hexdigest()


# podman: its gateway is asked of podman (the real one: tests/test_podman.py); here what azexec does with answers.


def _with_podman(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run azexec --identity-server --listen podman ARGS with a `podman` on PATH that runs SCRIPT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "podman"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    env = base_env(T=make_token(), PATH=f"{bin_dir}:{base_env()['PATH']}")
    return run("--token-env", "T", "--identity-server", "--listen", "podman", *args, env=env)


@pytest.mark.linux_only
def test_podman_is_asked_for_its_default_networks_gateway(tmp_path: Path) -> None:
    """The question is `podman network inspect podman`, and its answer is where azexec would listen."""
    script = f'echo "$@" > {tmp_path / "asked"}; echo "10.88.0.1 "\n'
    done = _with_podman(tmp_path, script, "--dry-run", "--", "true")
    assert done.returncode == 0, done.stderr
    asked = "network inspect podman --format {{range .Subnets}}{{.Gateway}} {{end}}\n"
    assert (tmp_path / "asked").read_text() == asked
    assert "listen on 10.88.0.1:<port>, for clients given host.containers.internal:<port>" in done.stdout


@pytest.mark.linux_only
@pytest.mark.parametrize(
    ("script", "said"),
    [
        ("echo 'Error: unable to find network with name or ID podman' >&2; exit 125\n",
         "`podman network inspect podman` failed: Error: unable to find network with name or ID podman"),
        ("exit 3\n", "`podman network inspect podman` exited with status 3"),
        ("echo 0.0.0.0\n", "podman gave '0.0.0.0' as its default network's gateway, not one private IPv4 address"),
        ("echo 8.8.8.8\n", "podman gave '8.8.8.8' as its default network's gateway, not one private IPv4 address"),
        ("echo 10.88.0.1 10.89.0.1\n", "podman gave '10.88.0.1 10.89.0.1' as its default network's gateway"),
        ("echo\n", "podman gave 'nothing' as its default network's gateway"),
    ],
    ids=["no such network", "failed silently", "a wildcard", "a public address", "two", "nothing"],
)  # fmt: skip
def test_a_podman_answer_azexec_cannot_use_is_one_line_and_125(tmp_path: Path, script: str, said: str) -> None:
    done = _with_podman(tmp_path, script, "--", "sh", "-c", "echo ran")
    assert (done.returncode, done.stdout) == (125, "")
    assert done.stderr.startswith(f"azexec: --listen podman: {said}"), done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.linux_only
def test_podman_missing_is_one_line_and_125(tmp_path: Path) -> None:
    env = base_env(T=make_token(), PATH=str(tmp_path))
    done = run("--token-env", "T", "--identity-server", "--listen", "podman", "--", "/bin/true", env=env)
    assert done.returncode == 125
    assert done.stderr == (
        "azexec: --listen podman: `podman network inspect podman` cannot run: No such file or directory; "
        "install podman, or name the address with --listen ADDRESS\n"
    )


def test_podman_elsewhere_than_linux_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """On macOS (podman machine: the bridge is in a VM) --listen podman fails with one line naming a way."""
    from azexec import listen
    from azexec.errors import PartFailed

    monkeypatch.setattr(listen.sys, "platform", "darwin")
    with pytest.raises(PartFailed) as raised:
        listen.check_runtime(listen.PODMAN_RUNTIME)
    assert str(raised.value) == (
        "--listen podman looks for Linux's podman0 bridge, which this system has not; "
        "with podman machine, try --listen 127.0.0.1 --advertise host.containers.internal"
    )


def test_rootless_podman_is_refused_with_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not root: podman is rootless, its containers in a network of their own, which podman0 is not."""
    from azexec import listen
    from azexec.errors import PartFailed

    monkeypatch.setattr(listen.sys, "platform", "linux")
    monkeypatch.setattr(listen.os, "geteuid", lambda: 1000)
    with pytest.raises(PartFailed) as raised:
        listen.check_runtime(listen.PODMAN_RUNTIME)
    assert str(raised.value).startswith("--listen podman serves rootful podman's bridge, and azexec is not root; ")
