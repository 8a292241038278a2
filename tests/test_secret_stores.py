"""Real secret stores as token commands: pass (with gpg), age, and az's own JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import SUBSCRIPTION, TENANT, base_env, explain, make_token, run

pytestmark = pytest.mark.slow

PRINT_IDS = [
    sys.executable,
    "-c",
    "import os; print(os.environ['AZURE_CLI_TENANT_ID'], os.environ.get('AZURE_CLI_SUBSCRIPTION_ID'))",
]


@pytest.fixture(scope="module")
def password_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A throwaway GNUPGHOME with a passphrase-less key and an empty password store, made once per module."""
    tmp_path = tmp_path_factory.mktemp("pass")
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = base_env(GNUPGHOME=str(gnupg), PASSWORD_STORE_DIR=str(tmp_path / "store"))
    # Made before the per-test clean_env fixture runs: drop azexec's variables here.
    env = {k: v for k, v in env.items() if not k.startswith(("AZURE_CLI_", "AZEXEC_"))}
    try:
        subprocess.run(
            [
                "gpg",
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-generate-key",
                "azexec test <azexec@example.invalid>",
                "default",
                "default",
                "never",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(["pass", "init", "azexec@example.invalid"], env=env, check=True, capture_output=True, timeout=60)
        yield env
    finally:
        # Nothing a test starts is left running: gpg started an agent for this GNUPGHOME.
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True, timeout=60)


def test_pass_show_as_token_command(password_store: dict[str, str]) -> None:
    """azexec --token-cmd "pass show azure/arm" decrypts with gpg and hands the token over."""
    token = make_token()
    subprocess.run(
        ["pass", "insert", "--multiline", "--force", "azure/arm"],
        input=token + "\n",
        text=True,
        env=password_store,
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = run("--token-cmd", "pass show azure/arm", "--", *PRINT_IDS, env=password_store)
    assert result.returncode == 0, explain(result)
    assert result.stdout == f"{TENANT} None\n"


def test_pass_show_of_a_missing_entry_fails_clearly(password_store: dict[str, str]) -> None:
    """pass's own message reaches the user; azexec adds one line and exits 125."""
    result = run("--token-cmd", "pass show azure/missing", "--", "true", env=password_store)
    assert result.returncode == 125
    assert "azure/missing is not in the password store" in result.stderr
    assert result.stderr.endswith("azexec: --token-cmd failed: pass exited with status 1; see its messages above\n")


def test_age_decrypt_as_token_command(tmp_path: Path) -> None:
    """azexec --token-cmd "age --decrypt -i key.txt token.age"."""
    token = make_token()
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True, timeout=60)
    recipient = next(line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line)
    encrypted = tmp_path / "token.age"
    subprocess.run(["age", "-r", recipient, "-o", str(encrypted)], input=token.encode(), check=True, timeout=60)
    result = run("--token-cmd", f"age --decrypt -i {key} {encrypted}", "--", *PRINT_IDS)
    assert result.returncode == 0, explain(result)
    assert result.stdout == f"{TENANT} None\n"


def test_az_get_access_token_json(tmp_path: Path) -> None:
    """A stand-in printing exactly what `az account get-access-token --output json` prints supplies all three values."""
    token = make_token()
    document = {
        "accessToken": token,
        "expiresOn": "2026-11-25 13:00:00.000000",
        "expires_on": 1795000000,
        "subscription": SUBSCRIPTION,
        "tenant": TENANT,
        "tokenType": "Bearer",
    }
    fake_az = tmp_path / "az"
    fake_az.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(document, indent=2, sort_keys=True)}\nEOF\n")
    fake_az.chmod(0o755)
    result = run("--token-cmd", f"{fake_az} account get-access-token --output json", "--", *PRINT_IDS)
    assert result.returncode == 0, explain(result)
    assert result.stdout == f"{TENANT} {SUBSCRIPTION}\n"
