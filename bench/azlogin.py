"""Time `azexec --az-login -- az group list` against a plain, already logged-in `az group list`.

Usage: python3 bench/azlogin.py [--rounds N] [--az DIR] [--venv DIR]

Both talk to a fake Azure Resource Manager over TLS on 127.0.0.1 (started here)
and get their token from an azexec identity server: the plain az from one that
stays up for the whole run, in a configuration directory logged in once with
`az login --identity`; azexec from its own, in its private directory. A third
arm runs the plain az behind the design floor (bench/floor.py: click, pyjwt's
decode, exec), what any launcher on azexec's libraries pays. Rounds are
interleaved (each round runs all three, in a random order), so a noisy
neighbour hits them alike. Prints the medians, and the medians of the
per-round ratios of azexec to the plain az and to the floor, with their
spread. azexec is installed (not editable) into a
virtualenv of its own, so that its bytecode is compiled as for a user: the
checkout's modules, under PYTHONDONTWRITEBYTECODE, would be compiled on every
run (~30 ms). Standard library only; needs openssl and an az (default: the one
the tests install, ~/.cache/azexec-tests/azure-cli-2.91.0).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fakearm import FakeArm, self_signed, subscription  # noqa: E402 - the tests' own fake, found through ROOT
from startup import make_venv  # noqa: E402 - bench/startup.py, beside this file

TENANT = "00000000-0000-4000-8000-000000000001"
SUBSCRIPTION = "d1b1c1a1-0000-4000-8000-00000000abcd"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "azexec-tests"

TOKEN_CODE = f"""
import jwt, sys, time
now = int(time.time())
claims = {{"aud": "https://management.core.windows.net/", "tid": "{TENANT}", "iat": now, "nbf": now,
          "exp": now + 4 * 3600, "appid": "bench", "oid": "bench"}}
sys.stdout.write(jwt.encode(claims, "bench-key-not-a-secret-0123456789abcdef", algorithm="HS256"))
"""


def start_arm(work: Path) -> tuple[FakeArm, str, Path]:
    """Start the tests' fake Resource Manager (tests/fakearm.py) over TLS, listing the bench's subscription."""
    cert, key = self_signed(work)
    arm = FakeArm(cert, key, [subscription(SUBSCRIPTION, TENANT)])
    return arm, arm.url, cert


def az_config(config: Path, arm_url: str) -> None:
    """Register the fake ARM's cloud in CONFIG and make it active, as `az cloud register` and `az cloud set` do
    (written here: az before 2.73.0 cannot register a cloud without discovering its endpoints)."""
    config.mkdir()
    (config / "clouds.config").write_text(
        "[BenchCloud]\nendpoint_active_directory = https://login.bench.invalid\n"
        "endpoint_active_directory_resource_id = https://management.core.windows.net/\n"
        f"endpoint_resource_manager = {arm_url}\n"
    )
    (config / "config").write_text("[cloud]\nname = BenchCloud\n\n[core]\noutput = json\n")


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "rg-fake" not in result.stdout:
        sys.exit(f"bench: {argv[0]} failed ({result.returncode}): {result.stderr[-800:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--az", type=Path, default=CACHE / "azure-cli-2.91.0" / "bin", help="the bin directory of an az"
    )
    parser.add_argument("--venv", type=Path, help="reuse (or create) this virtualenv for azexec")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="azexec-bench-az-"))
    azexec = str(make_venv(args.venv or work / "venv") / "azexec")
    arm, arm_url, cert = start_arm(work)
    token = subprocess.run([sys.executable, "-c", TOKEN_CODE], check=True, capture_output=True, text=True).stdout
    token_file = work / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_", "ARM_"))}
    base.update(PATH=f"{args.az}:{base['PATH']}", REQUESTS_CA_BUNDLE=str(cert), AZURE_CORE_COLLECT_TELEMETRY="0")
    plain_config, user_config = work / "plain", work / "user"
    az_config(plain_config, arm_url)
    az_config(user_config, arm_url)
    # A user's az directory holds az's command index, built on first use (az before 2.73.0 has no packaged one).
    user_env = {**base, "AZURE_CONFIG_DIR": str(user_config)}
    subprocess.run([str(args.az / "az"), "account", "list", "--output", "none"], env=user_env, check=True)

    # The plain az's identity: an azexec --az-login that stays up (its identity server, and for an az before
    # 2.73.0 the older protocol it then serves), and one real az login --identity through it, in plain_config.
    env_file = work / "env.json"
    dump = (
        f"import json, os; json.dump(dict(os.environ), open('{env_file}.tmp', 'w'));"
        f" os.rename('{env_file}.tmp', '{env_file}')"
    )
    holder = subprocess.Popen(
        [azexec, "-q", "--az-login", "--token-file", str(token_file), "--", "sh", "-c",
         f"AZURE_CONFIG_DIR={plain_config} az login --identity --output none && {sys.executable} -c \"{dump}\""
         " && exec sleep 3600"],
        env={**base, "AZURE_CONFIG_DIR": str(plain_config)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not env_file.exists():
            if time.monotonic() > deadline or holder.poll() is not None:
                sys.exit("bench: the plain az could not log in through azexec's identity server")
            time.sleep(0.05)
        plain_env = {**json.loads(env_file.read_text()), "AZURE_CONFIG_DIR": str(plain_config)}
        plain = ["az", "group", "list"]
        wrapped = [azexec, "-q", "--az-login", "--token-file", str(token_file), "--", "az", "group", "list"]
        azexec_env = {**base, "AZURE_CONFIG_DIR": str(user_config)}
        # The plain az behind the design floor (bench/floor.py: click, pyjwt's decode, exec): what any launcher
        # built on azexec's libraries pays before az starts, with nothing of azexec's own.
        floored = [str(Path(azexec).with_name("python")), str(ROOT / "bench" / "floor.py"), "-q"]
        floored += ["--token-file", str(token_file), "--", *plain]
        runs = {"plain": (plain, plain_env), "floor": (floored, plain_env), "azexec": (wrapped, azexec_env)}
        for argv, env in runs.values():  # warm the disk cache for both
            timed(argv, env)
        times: dict[str, list[float]] = {label: [] for label in runs}
        order = random.Random(20261202)
        for _ in range(args.rounds):
            for label in order.sample(list(runs), len(runs)):
                times[label].append(timed(*runs[label]))
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait()
        arm.close()
        shutil.rmtree(work, ignore_errors=True)

    version = subprocess.run([str(args.az / "az"), "version", "-o", "json"], capture_output=True, text=True, env=base)
    az_version = json.loads(version.stdout or "{}").get("azure-cli", "?")
    ratios = sorted(a / p for a, p in zip(times["azexec"], times["plain"], strict=True))
    floors = sorted(a / f for a, f in zip(times["azexec"], times["floor"], strict=True))
    print(f"az {az_version}, {os.cpu_count()} cores, {args.rounds} paired rounds")
    print(f"plain az group list (logged in)      median {statistics.median(times['plain']) * 1000:7.0f} ms")
    print(f"the design floor, then az group list median {statistics.median(times['floor']) * 1000:7.0f} ms")
    print(f"azexec --az-login -- az group list   median {statistics.median(times['azexec']) * 1000:7.0f} ms")
    print(f"ratio, median of rounds {statistics.median(ratios):.2f}x  (spread {ratios[0]:.2f}-{ratios[-1]:.2f}x)")
    print(f"against the floor       {statistics.median(floors):.2f}x  (spread {floors[0]:.2f}-{floors[-1]:.2f}x)")


if __name__ == "__main__":
    main()
