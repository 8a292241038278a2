"""Recipes cannot rot: every command line in the README and docs/ that can run offline runs here.

Secret stores and tools are stand-ins on PATH (pass, vault, op, az, terraform,
sops, docker, azd: the client written from azd's source); age and make are the real ones. A stand-in that is a client of
the identity server really asks it, so a recipe whose mode does not serve its
tool fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SUBSCRIPTION, TENANT, base_env, explain, make_token, write_private

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: The documents a user follows (docs/development.md and docs/performance.md hold the developers' commands).
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "usage.md", ROOT / "docs" / "recipes.md"]
#: Lines that are not recipes: the synopsis, messages azexec prints, and what other tests run (installs: test_install).
NOT_RECIPES = re.compile(
    r"^(azexec \[OPTIONS\]|azexec: |python3 -m venv|scripts/install-test-tools|pip |pipx |uv tool |eval |_AZEXEC)"
)


def snippets() -> list[tuple[str, str]]:
    """Return (where, script) for each indented code block's runnable lines; a block of exports is one script."""
    found: list[tuple[str, str]] = []
    for document in DOCUMENTS:
        text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
        for block in re.findall(r"(?:^    +\S.*\n?)+", text, flags=re.MULTILINE):
            lines = [line[4:] for line in block.rstrip("\n").split("\n")]
            script = "\n".join(lines).replace("\\\n", " ")
            commands = [line for line in script.split("\n") if line.strip() and not NOT_RECIPES.match(line)]
            if not commands:
                continue
            if any(line.startswith("export ") for line in commands):
                found.append((document.name, "\n".join(commands)))
            else:
                found.extend((document.name, line) for line in commands)
    return found


#: A client of the identity server, as the SDKs and terraform are: argv[1] is the protocol, argv[2] the resource.
CLIENT = """#!{python}
import json, os, sys, urllib.request
protocol, resource = sys.argv[1], sys.argv[2]
if protocol == "imds":
    url, headers = os.environ["ARM_MSI_ENDPOINT"], {{"Metadata": "true"}}
else:
    url, headers = os.environ["IDENTITY_ENDPOINT"], {{"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]}}
opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
request = urllib.request.Request(url + "?api-version=2019-08-01&resource=" + resource, headers=headers)
answer = json.load(opener.open(request))
assert answer["access_token"].startswith("eyJ"), answer
"""

#: az account get-access-token [--resource R]: the JSON az prints, with a token for R (default: ARM).
AZ_TOKEN = """#!{python}
import json, sys
sys.path.insert(0, {tests!r})
from helpers import SUBSCRIPTION, TENANT, make_token
args = sys.argv[1:]
resource = args[args.index("--resource") + 1] if "--resource" in args else "https://management.core.windows.net/"
print(json.dumps({{"accessToken": make_token(aud=resource), "subscription": SUBSCRIPTION, "tenant": TENANT}}))
"""

STAND_INS = {
    # Secret stores: print the token.
    "pass": 'cat "$HOME/token"',
    "vault": 'cat "$HOME/token"',
    "op": 'cat "$HOME/token"',
    # az: get-access-token prints what az prints; login asks the identity server as az does; the rest answer.
    # az as released: get-access-token as the user's own logged-in az; login --identity asks the identity server
    # and logs in the config dir it runs with; anything else there fails until then, as released az does.
    "az": """config="${AZURE_CONFIG_DIR:-$HOME/.azure}"
case "$1 $2" in
  "account get-access-token") exec az-token "$@";;
  "login --identity") identity-client app-service https://management.core.windows.net/ && touch "$config/logged-in";;
  *) test -e "$config/logged-in" || { echo "ERROR: Please run 'az login' to setup account." >&2; exit 1; }
     echo '[]';;
esac""",
    "terraform": "exec identity-client imds https://management.azure.com/",
    "sops": "exec identity-client app-service https://vault.azure.net",
    "docker": 'test -n "$AZURE_CLI_ACCESS_TOKEN" && test -n "$AZURE_CLI_TENANT_ID"',
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A home and working directory with the files the recipes name, and the stand-ins first on PATH."""
    home = tmp_path_factory.mktemp("home")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    token = make_token()
    write_private(home / "token", token)
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body + "\n")
        (bin_dir / name).chmod(0o755)
    client = bin_dir / "identity-client"
    client.write_text(CLIENT.format(python=sys.executable))
    client.chmod(0o755)
    # azd: the client written from azd's source (tests/azdclient.py): any azd command asks for a token first.
    (bin_dir / "azd").write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "azdclient.py"} "$@"\n')
    (bin_dir / "azd").chmod(0o755)
    az_token = bin_dir / "az-token"
    az_token.write_text(AZ_TOKEN.format(python=sys.executable, tests=str(Path(__file__).parent)))
    az_token.chmod(0o755)
    write_private(home / "azure.env", f"AZURE_CLI_SUBSCRIPTION_ID={SUBSCRIPTION}\nAZURE_CLI_TENANT_ID={TENANT}\n")
    (home / "Makefile").write_text("deploy:\n\taz group list\n")
    (home / "deploy.py").write_text(
        f"import subprocess\nsubprocess.run(['{client}', 'app-service', 'https://management.azure.com/'], check=True)\n"
    )
    for name in ("s.yaml", "secrets.enc.yaml", "main.bicep"):
        (home / name).write_text("")
    key = home / ".config" / "age" / "key.txt"
    key.parent.mkdir(parents=True)
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True, timeout=60)
    recipient = next(line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line)
    subprocess.run(["age", "-r", recipient, "-o", str(home / "azure.age"), str(home / "token")], check=True, timeout=60)
    env = {k: v for k, v in base_env().items() if not k.startswith(("AZURE_", "ARM_", "IDENTITY_", "MSI_"))}
    return {
        **env,
        "HOME": str(home),
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{env['PATH']}",
        "ARM_TOKEN": token,
        "DEMO_SUBSCRIPTION": SUBSCRIPTION,
        "DEMO_TENANT": TENANT,
    }


def test_the_documents_have_recipes() -> None:
    """The collector finds the recipes (so an empty list below would be a broken collector, not a pass)."""
    found = [script for _, script in snippets()]
    assert len(found) >= 15
    assert any("--identity-server" in script and "terraform plan" in script for script in found)


@pytest.mark.parametrize(("where", "script"), snippets(), ids=lambda value: value[:70])
def test_the_recipe_runs(sandbox: dict[str, str], where: str, script: str) -> None:
    """The recipe runs as written, with the stand-ins, and succeeds."""
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=sandbox["HOME"],
        env=sandbox,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{where}: {script}\n{explain(result)}"
    assert "Traceback" not in result.stderr
