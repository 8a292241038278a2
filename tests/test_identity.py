"""The identity server with the real Azure SDK clients, run as COMMAND by azexec.

Python azure-identity (sync, DefaultAzureCredential, asyncio) and JS
@azure/identity run by node get the token through the App Service protocol;
terraform's IMDS-style request is replayed exactly. Refresh, refusals and the
server's security are tested against a live azexec.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    ARM,
    TENANT,
    all_gone,
    base_env,
    explain,
    make_token,
    mint_command,
    nearly_expired,
    run,
    wait_until,
    write_private,
)

pytestmark = pytest.mark.slow

NODE_MODULES = Path(__file__).resolve().parent / "node" / "node_modules"

PYTHON_CLIENT = """
import hashlib, sys
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
kind, scope = sys.argv[1], sys.argv[2]
credential = DefaultAzureCredential() if kind == "default" else ManagedIdentityCredential()
try:
    token = credential.get_token(scope)
except Exception as e:
    print("refused:", e)
    sys.exit(3)
print(hashlib.sha256(token.token.encode()).hexdigest(), token.expires_on)
"""

ASYNC_CLIENT = """
import asyncio, hashlib, sys
from azure.identity.aio import ManagedIdentityCredential

async def main():
    async with ManagedIdentityCredential() as credential:
        token = await credential.get_token(sys.argv[1])
    print(hashlib.sha256(token.token.encode()).hexdigest(), token.expires_on)

asyncio.run(main())
"""

JS_CLIENT = """
const { DefaultAzureCredential, ManagedIdentityCredential } = require("@azure/identity");
const crypto = require("crypto");
const [kind, scope] = process.argv.slice(2);
const credential = kind === "default" ? new DefaultAzureCredential() : new ManagedIdentityCredential();
credential.getToken(scope).then(
  (token) => console.log(crypto.createHash("sha256").update(token.token).digest("hex"),
                         Math.floor(token.expiresOnTimestamp / 1000)),
  (error) => { console.log("refused: " + error); process.exit(3); },
);
"""

#: What terraform's azurerm provider (go-azure-sdk) sends to ARM_MSI_ENDPOINT.
IMDS_CLIENT = """
import json, os, sys, urllib.request
url = os.environ["ARM_MSI_ENDPOINT"] + "?api-version=2018-02-01&resource=https://management.azure.com/"
headers = {"Metadata": "true"} if sys.argv[1] == "with-metadata" else {}
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    body = json.load(opener.open(urllib.request.Request(url, headers=headers)))
    same = body["access_token"] == os.environ["AZURE_CLI_ACCESS_TOKEN"]
    print(200, json.dumps(sorted(body)), body["expires_in"] > 0, same)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        return write_private(tmp_path / name, text)

    return write


def identity_env(**extra: str) -> dict[str, str]:
    """The environment of a run whose COMMAND is an SDK client: no stray Azure settings, no bytecode."""
    env = {k: v for k, v in base_env(**extra).items() if not k.startswith(("IDENTITY_", "MSI_", "AZURE_", "ARM_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NODE_PATH"] = str(NODE_MODULES)
    return {**env, **extra}


def with_client(client: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run azexec --identity-server with the token in T, and the Python CLIENT as COMMAND."""
    return run("--identity-server", "--token-env", "T", "--", sys.executable, str(client), *args, env=env, timeout=60)


@pytest.mark.parametrize("kind", ["managed", "default"])
def test_python_azure_identity_gets_the_token(script: Callable[[str, str], Path], kind: str) -> None:
    """ManagedIdentityCredential and DefaultAzureCredential get exactly the token, with its expiry."""
    tok = make_token(lifetime=7200)
    client = script("client.py", PYTHON_CLIENT)
    args = ["--identity-server", "--token-env", "T", "--", sys.executable, str(client), kind, ARM + ".default"]
    result = run(*args, env=identity_env(T=tok), timeout=60)
    assert result.returncode == 0, explain(result)
    digest, expires_on = result.stdout.split()
    assert digest == sha(tok)
    assert int(expires_on) == json.loads(_payload(tok))["exp"]


def test_python_asyncio_client_gets_the_token(script: Callable[[str, str], Path]) -> None:
    """azure.identity.aio.ManagedIdentityCredential (aiohttp) gets it too."""
    tok = make_token()
    client = script("client.py", ASYNC_CLIENT)
    result = run(
        "--identity-server", "--token-env", "T", "--", sys.executable, str(client), ARM, env=identity_env(T=tok)
    )
    assert result.returncode == 0, explain(result)
    assert result.stdout.split()[0] == sha(tok)


@pytest.mark.parametrize("kind", ["managed", "default"])
def test_js_azure_identity_gets_the_token(script: Callable[[str, str], Path], kind: str) -> None:
    """@azure/identity from npm, run by node: the same two credentials."""
    tok = make_token()
    client = script("client.js", JS_CLIENT)
    result = run(
        "--identity-server",
        "--token-env",
        "T",
        "--",
        "node",
        str(client),
        kind,
        ARM + ".default",
        env=identity_env(T=tok),
    )
    assert result.returncode == 0, explain(result)
    digest, expires_on = result.stdout.split()
    assert digest == sha(tok)
    # msal-node turns expires_on into expires_in and back, each time against its
    # own clock rounded to the second: across a second boundary it is 1 s off.
    assert abs(int(expires_on) - json.loads(_payload(tok))["exp"]) <= 1


def test_a_second_resource_through_a_resource_token_command(script: Callable[[str, str], Path], tmp_path: Path) -> None:
    """With {resource} in --token-cmd, a client asking for Key Vault gets a Key Vault token."""
    count = tmp_path / "count"
    client = script("client.py", PYTHON_CLIENT)
    token_cmd = mint_command(tmp_path)
    args = ["--identity-server", "--token-cmd", token_cmd, "--", sys.executable, str(client), "managed"]
    result = run(*args, "https://vault.azure.net/.default", env=identity_env(), timeout=60)
    assert result.returncode == 0, explain(result)
    assert count.read_text().split() == ["https://management.core.windows.net/", "https://vault.azure.net"]


def test_a_refused_resource_reaches_the_sdk_with_azexec_message(script: Callable[[str, str], Path]) -> None:
    """Without {resource}, another resource is refused: the SDK's exception carries azexec's one line."""
    client = script("client.py", PYTHON_CLIENT)
    args = ["--identity-server", "--token-env", "T", "--", sys.executable, str(client), "managed"]
    result = run(*args, "https://vault.azure.net/.default", env=identity_env(T=make_token()), timeout=60)
    assert result.returncode == 3, explain(result)
    assert "azexec: the token azexec holds is for https://management.azure.com/, not for" in result.stdout


def test_a_dead_http_proxy_does_not_stop_the_clients(script: Callable[[str, str], Path]) -> None:
    """HTTP_PROXY pointing nowhere: NO_PROXY keeps the loopback request (and its secret header) away from it."""
    tok = make_token()
    client = script("client.py", PYTHON_CLIENT)
    env = identity_env(T=tok, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="example.com")
    result = run("--identity-server", "--token-env", "T", "--", sys.executable, str(client), "managed", ARM, env=env)
    assert result.returncode == 0, explain(result)
    assert result.stdout.split()[0] == sha(tok)


def test_imds_path_answers_terraforms_request(script: Callable[[str, str], Path]) -> None:
    """go-azure-sdk's GET with Metadata: true and no secret header gets the token and expires_in."""
    result = with_client(script("imds.py", IMDS_CLIENT), "with-metadata", env=identity_env(T=make_token()))
    assert result.returncode == 0, explain(result)
    assert result.stdout.split()[0] == "200"
    assert result.stdout.rstrip().endswith("True True")


def test_imds_path_refuses_a_request_without_metadata(script: Callable[[str, str], Path]) -> None:
    """Without Metadata: true (as a browser or SSRF would send), a 400 with azexec's message."""
    result = with_client(script("imds.py", IMDS_CLIENT), "without", env=identity_env(T=make_token()))
    code, body = result.stdout.split(" ", 1)
    assert code == "400"
    assert json.loads(body)["message"] == "azexec: the Metadata: true header is missing"


def test_command_environment_points_clients_at_the_server() -> None:
    """COMMAND sees the endpoint, the header, NO_PROXY, the credential choice and terraform's variables."""
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    env = identity_env(T=make_token(), MSI_ENDPOINT="http://169.254.169.254/x", NO_PROXY="corp.example")
    result = run("--identity-server", "--token-env", "T", "--", sys.executable, "-c", code, env=env)
    child = json.loads(result.stdout)
    assert child["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:")
    assert len(child["IDENTITY_HEADER"]) >= 43  # 32 random bytes, URL-safe
    assert "MSI_ENDPOINT" not in child
    assert child["NO_PROXY"] == "corp.example,127.0.0.1,localhost"
    assert child["no_proxy"] == "corp.example,127.0.0.1,localhost"
    assert child["AZURE_TOKEN_CREDENTIALS"] == "ManagedIdentityCredential"
    assert child["ARM_USE_MSI"] == "true"
    assert child["ARM_MSI_ENDPOINT"].startswith("http://127.0.0.1:")
    assert child["ARM_MSI_ENDPOINT"] != child["IDENTITY_ENDPOINT"]
    assert child["ARM_TENANT_ID"] == TENANT


# ---------------------------------------------------------------- refresh

FETCH = """
import json, os, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def fetch():
    url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com/"
    req = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
    return json.load(opener.open(req))["access_token"]
first = fetch()
if len(sys.argv) > 1:  # rotate the token file: argv names the files, never holds a token
    with open(sys.argv[2]) as rotated, open(sys.argv[1], "w") as f:
        f.write(rotated.read())
second = fetch()
print(json.dumps([first, second]))
"""


def test_short_lived_tokens_are_refreshed_by_the_token_command(
    script: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """Tokens with 9 of their 60 minutes left: each request runs the command again, and gets its fresh token."""
    count = tmp_path / "count"
    client = script("fetch.py", FETCH)
    token_cmd = mint_command(tmp_path, resource=ARM, lifetime=540, age=3060)
    result = run(
        "-q", "--identity-server", "--token-cmd", token_cmd, "--", sys.executable, str(client), env=identity_env()
    )
    assert result.returncode == 0, explain(result)
    first, second = json.loads(result.stdout)
    assert first != second
    assert len(count.read_text().split()) == 3  # the start, and one refresh per request


def test_a_rewritten_token_file_is_read_again(
    script: Callable[[str, str], Path], private_file: Callable[..., Path]
) -> None:
    """A token file rotated between two requests (workload identity): the second request gets the new token."""
    old, new = nearly_expired(), make_token(lifetime=3600)
    path, rotated = private_file(old), private_file(new, name="rotated")
    client = script("fetch.py", FETCH)
    result = run(
        "-q",
        "--identity-server",
        "--token-file",
        str(path),
        "--",
        sys.executable,
        str(client),
        str(path),
        str(rotated),
        env=identity_env(),
    )
    assert result.returncode == 0, explain(result)
    assert json.loads(result.stdout) == [old, new]


def _payload(tok: str) -> str:
    import base64

    segment = tok.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


# ---------------------------------------------------------------- security

PROBE = """
import json, os, sys, urllib.request
port = int(os.environ["IDENTITY_ENDPOINT"].split(":")[2].split("/")[0])
listening = []
with open("/proc/net/tcp") as f:
    for line in f.readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            listening.append(local.split(":")[0])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com/"
opener.open(urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})).read()
print(json.dumps({"port": port, "listening": listening, "header": os.environ["IDENTITY_HEADER"],
                  "paths": [os.environ["IDENTITY_ENDPOINT"], os.environ["ARM_MSI_ENDPOINT"]]}))
"""


def test_the_server_listens_on_loopback_only_and_closes_with_command(script: Callable[[str, str], Path]) -> None:
    """One listening socket, 127.0.0.1; gone when COMMAND has exited; nothing logged of the requests."""
    import socket

    probe = script("probe.py", PROBE)
    result = run(
        "--identity-server", "--token-env", "T", "--", sys.executable, str(probe), env=identity_env(T=make_token())
    )
    assert (result.returncode, result.stderr) == (0, ""), explain(result)
    seen = json.loads(result.stdout)
    assert seen["listening"] == ["0100007F"]  # 127.0.0.1, and no other address
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", seen["port"]), timeout=5)


def test_neither_secret_is_in_any_argv_nor_written_to_disk(script: Callable[[str, str], Path], tmp_path: Path) -> None:
    """Under strace -f: no write to disk; and no /proc/PID/cmdline holds the header or a secret path."""
    from test_security import disk_writes

    probe = script("probe.py", PROBE + "\nimport time; time.sleep(0.5)\n")
    log = tmp_path / "strace.log"
    env = identity_env(T=make_token())
    argv = ["strace", "-f", "-qq", "-o", str(log), "-e", "trace=%file,%desc"]
    proc = subprocess.Popen(
        [
            *argv,
            os.fspath(Path(sys.executable).with_name("azexec")),
            "--identity-server",
            "--token-env",
            "T",
            "--",
            sys.executable,
            str(probe),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    cmdlines: list[bytes] = []
    while proc.poll() is None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdlines.append((entry / "cmdline").read_bytes())
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    # The scan saw the probe (whose argv names probe.py) while it ran, so its silence about secrets means something.
    assert [c for c in cmdlines if str(probe).encode() in c]
    seen = json.loads(out)
    secrets = [seen["header"].encode()] + [p.rsplit("/", 1)[1].split("?")[0].encode() for p in seen["paths"]]
    assert not [c for c in cmdlines if any(s in c for s in secrets)]
    assert disk_writes(log) == []


def test_refresh_commands_run_in_azexec_environment_not_commands(
    script: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """A token command run for a request never sees IDENTITY_ENDPOINT: it cannot call back into azexec."""
    seen = tmp_path / "seen"
    token_cmd = mint_command(
        tmp_path, extra=f"\nimport os\nopen({str(seen)!r}, 'a').write(str('IDENTITY_ENDPOINT' in os.environ) + '\\n')\n"
    )
    client = script("client.py", PYTHON_CLIENT)
    result = run(
        "--identity-server",
        "--token-cmd",
        token_cmd,
        "--",
        sys.executable,
        str(client),
        "managed",
        "https://vault.azure.net",
        env=identity_env(),
    )
    assert result.returncode == 0, explain(result)
    assert seen.read_text().split() == ["False", "False"]


@pytest.mark.parametrize(
    ("source", "warned"),
    [("--token-cmd", False), ("--token-env", True)],
    ids=["refreshable: no warning", "read once: warned"],
)
def test_the_start_up_expiry_warning_only_when_no_refresh_will_come(
    private_file: Callable[..., Path], source: str, warned: bool
) -> None:
    """A 4-minute token: "long commands may fail part-way" only when the server cannot replace it."""
    tok = make_token(lifetime=240)
    path = private_file(tok)
    options = ["--token-cmd", f"cat {path}"] if source == "--token-cmd" else ["--token-env", "T"]
    result = run("--identity-server", *options, "--", "true", env=identity_env(T=tok))
    assert result.returncode == 0, explain(result)
    assert ("long commands may fail part-way" in result.stderr) is warned, explain(result)


#: A stdlib client: prints the token it gets for RESOURCE (argv[1]) between markers, as a careless script would.
PRINTING_CLIENT = """
import os, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=" + sys.argv[1]
request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
import json
print("token:" + json.loads(opener.open(request).read())["access_token"] + ":end", flush=True)
"""

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def test_mask_covers_a_per_resource_token(script: Callable[[str, str], Path], tmp_path: Path) -> None:
    """--mask --identity-server: a Key Vault token COMMAND got from the server and printed is masked."""
    client = script("client.py", PRINTING_CLIENT)
    argv = ["--mask", "--identity-server", "--token-cmd", mint_command(tmp_path), "--", sys.executable, str(client)]
    result = run(*argv, "https://vault.azure.net", env=identity_env())
    assert result.returncode == 0, explain(result)
    assert result.stdout == "token:***:end\n"
    assert (tmp_path / "count").read_text().split()[-1] == "https://vault.azure.net"


def test_a_refresh_commands_stderr_is_masked(script: Callable[[str, str], Path], tmp_path: Path) -> None:
    """A token command run for a refresh that prints its token on stderr: azexec passes that on masked."""
    client = script("client.py", PRINTING_CLIENT)
    # Five-minute tokens are due for refresh at once; from its second run on, it also prints the token on stderr.
    loud = "\nif len(open(sys.argv[2]).read().split()) > 1:\n    print('refresh says:', token, file=sys.stderr)\n"
    token_cmd = mint_command(tmp_path, lifetime=300, age=3300, extra=loud)
    result = run("-q", "--mask", "--identity-server", "--token-cmd", token_cmd, "--", sys.executable, str(client), ARM)
    assert result.returncode == 0, explain(result)
    assert "refresh says: ***" in result.stderr, explain(result)
    assert not JWT.search(result.stderr + result.stdout), explain(result)


def test_token_commands_for_requests_get_the_callers_signal_mask(
    script: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """The first token command and one run for a request have the same (the caller's) blocked-signal mask."""
    client = script("client.py", PRINTING_CLIENT)
    masks = tmp_path / "masks"
    extra = f"\nopen({str(masks)!r}, 'a').write([l for l in open('/proc/self/status') if l.startswith('SigBlk')][0])\n"
    token_cmd = mint_command(tmp_path, extra=extra)
    result = run(
        "-q",
        "--identity-server",
        "--token-cmd",
        token_cmd,
        "--",
        sys.executable,
        str(client),
        "https://vault.azure.net",
    )
    assert result.returncode == 0, explain(result)
    first, for_request = masks.read_text().splitlines()
    assert for_request == first == "SigBlk:\t0000000000000000"


#: Opens 70 connections to the identity server that trickle a request head a byte a second, for 30 s at most;
#: touches argv[1] once all are open.
TRICKLER = """
import os, socket, sys, threading, time
port = int(os.environ["IDENTITY_ENDPOINT"].split(":")[2].split("/")[0])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(70)]
open(sys.argv[1], "w").close()
for byte in b"GET / HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa"[:30]:
    for sock in socks:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            pass
    time.sleep(1)
"""


def test_slow_clients_do_not_keep_azexec_alive_after_command(
    script: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """COMMAND leaves 70 trickling connections behind and exits: azexec exits with it, not when they stop (30 s)."""
    trickler = script("trickler.py", TRICKLER)
    ready = tmp_path / "ready"
    # The trickler outlives COMMAND (and does not hold the test's pipes); COMMAND waits until it is connected.
    command = (
        f"{sys.executable} {trickler} {ready} >/dev/null 2>&1 & n=0; "
        f"while [ ! -e {ready} ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done"
    )
    env = identity_env(T=make_token())
    started = time.monotonic()
    try:
        result = run("--identity-server", "--token-env", "T", "--", "sh", "-c", command, env=env)
        took = time.monotonic() - started
    finally:
        subprocess.run(["pkill", "-f", str(trickler)], check=False)
    assert result.returncode == 0, explain(result)
    assert ready.exists()
    assert took < 15, f"azexec stayed {took:.1f}s: it waited for the slow clients"


@pytest.mark.parametrize(
    "stray",
    [
        {"AZURE_CLIENT_ID": "0b1c2d3e-0000-4000-8000-0000000000cc"},
        {"AZURE_CLIENT_ID": "0b1c2d3e-0000-4000-8000-0000000000cc", "AZURE_CLIENT_SECRET": "not-a-real-secret"},
        {"AZURE_TOKEN_CREDENTIALS": "dev"},
        {"AZURE_FEDERATED_TOKEN_FILE": "/nonexistent", "AZURE_TENANT_ID": TENANT},
    ],
    ids=["client id", "client secret", "AZURE_TOKEN_CREDENTIALS=dev", "federated token file"],
)
def test_the_sdk_uses_the_server_whatever_the_parent_set(
    script: Callable[[str, str], Path], stray: dict[str, str]
) -> None:
    """DefaultAzureCredential gets the served token, not another identity or credential the parent configured."""
    tok = make_token(lifetime=7200)
    client = script("client.py", PYTHON_CLIENT)
    result = with_client(client, "default", ARM + ".default", env=identity_env(T=tok, **stray))
    assert result.returncode == 0, explain(result)
    assert result.stdout.split()[0] == sha(tok)


#: Eight requests at once, each for its own resource; touches argv[1] when all have ended (answered or refused).
MANY_CLIENT = """
import os, sys, threading, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def ask(i):
    url = os.environ["IDENTITY_ENDPOINT"] + f"?api-version=2019-08-01&resource=https://r{i}.example"
    try:
        request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
        opener.open(request, timeout=60)
    except Exception:
        pass
threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
open(sys.argv[1], "w").close()
"""


def test_no_token_command_outlives_azexec(script: Callable[[str, str], Path], tmp_path: Path) -> None:
    """COMMAND exits while eight requests' token commands run or start: every one of them dies with azexec."""
    client = script("many.py", MANY_CLIENT)
    pids, done = tmp_path / "pids", tmp_path / "done"
    pids.mkdir()
    write_private(tmp_path / "token", make_token())
    slow = f"sh -c 'case {{resource}} in *r?.example) echo $$ > {pids}/$$; exec sleep 300;; esac; cat {tmp_path}/token'"
    command = (
        f"{sys.executable} {client} {done} >/dev/null 2>&1 & n=0; "
        f'while [ -z "$(ls {pids})" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done'
    )
    result = run("-q", "--identity-server", "--token-cmd", slow, "--", "sh", "-c", command, env=identity_env())
    assert result.returncode == 0, explain(result)
    wait_until(done.exists, what="the end of every request")
    # Each file is named after its token command's pid: azexec may kill the command between the shell
    # creating the file and writing into it, so the name, not the content, says who was started.
    started = [int(p.name) for p in pids.iterdir()]
    assert started
    assert all_gone(started)


#: A job COMMAND leaves behind: once COMMAND (pid argv[2]) has exited, it asks for a token every 50 ms
#: for 0.8 s (within the second --mask gives a straggler) and writes to argv[1] whether it was refused.
LATE_CLIENT = """
import os, sys, time, urllib.request
for _ in range(400):
    try:
        os.kill(int(sys.argv[2]), 0)
    except ProcessLookupError:
        break
    time.sleep(0.01)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com/"
outcome = "served"
for _ in range(16):
    try:
        request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
        opener.open(request, timeout=10)
    except Exception:
        outcome = "refused"
        break
    time.sleep(0.05)
open(sys.argv[1], "w").write(outcome)
"""


def test_with_mask_a_job_left_behind_is_not_served(script: Callable[[str, str], Path], tmp_path: Path) -> None:
    """--mask --identity-server: COMMAND exits leaving a job that asks for a token: the server no longer answers."""
    client = script("late.py", LATE_CLIENT)
    outcome = tmp_path / "outcome"
    command = f"{sys.executable} {client} {outcome} $$ &"
    result = run(
        "--mask", "--identity-server", "--token-env", "T", "--", "sh", "-c", command, env=identity_env(T=make_token())
    )
    assert result.returncode == 0, explain(result)
    wait_until(outcome.exists, what="the late client's outcome")
    assert outcome.read_text() == "refused"


def test_when_refreshing_fails_the_expiry_warning_and_diagnosis_come_back(
    script: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """A token with 12 s left whose command then fails: the request is served; azexec warns at expiry and after."""
    client = script("fetch.py", PRINTING_CLIENT)
    ran = tmp_path / "ran"
    # The first run prints the last 12 s of a minute's token (so the first request refreshes); later runs fail.
    failing = f"sh -c 'test -e {ran} && exit 3; touch {ran}; exec {mint_command(tmp_path, lifetime=12, age=48)}'"
    command = f"{sys.executable} {client} {ARM} >/dev/null; sleep 14; exit 1"
    result = run("--identity-server", "--token-cmd", failing, "--", "sh", "-c", command, env=identity_env(), timeout=60)
    assert result.returncode == 1, explain(result)
    assert "refreshing the token failed: --token-cmd failed: sh exited with status 3" in result.stderr
    assert "while COMMAND is running" in result.stderr, explain(result)
    assert "into the run; COMMAND's failure may be an authentication error" in result.stderr, explain(result)
