"""Time azexec's start-up against the launcher floor, the design floor and `dotenv run`.

Usage: python3 bench/startup.py [--rounds N] [--runs N] [--venv DIR]

Installs azexec (not editable, so its bytecode is compiled as for a user) into
a fresh virtualenv, and again into a crowded one that also holds azure-identity
(and so cryptography, which pyjwt imports whenever it can), makes a demo token, and times every command with hyperfine
in ROUNDS interleaved rounds, so that a noisy neighbour hits all of them alike.
Prints medians, ratios and peak memory. Then, where valgrind is installed, the
same ratios in instructions (callgrind, up to the exec, with a fixed hash
seed): the same count on every run, whatever else the machine does, where the
times of two identical commands differ by up to 15% here. Needs hyperfine
(installed with apt-get when missing and running as root). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEMO_JWT_CODE = """
import jwt, sys, time
now = int(time.time())
claims = {"aud": "https://management.azure.com/", "tid": "00000000-0000-4000-8000-000000000001",
          "iat": now, "nbf": now, "exp": now + 30 * 86400, "upn": "bench@azexec.example"}
sys.stdout.write(jwt.encode(claims, "bench-key-not-a-secret-0123456789abcdef", algorithm="HS256"))
"""


def ensure_hyperfine() -> str:
    found = shutil.which("hyperfine")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("bench: hyperfine is missing; install it (Debian: apt-get install hyperfine)")
    subprocess.run(["/usr/bin/apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["/usr/bin/apt-get", "install", "-y", "-qq", "hyperfine"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("hyperfine") or sys.exit("bench: hyperfine did not install")


def make_venv(where: Path, *also: str) -> Path:
    """Make a virtualenv at WHERE (unless there) holding azexec and ALSO."""
    bin_dir = where / "bin"
    if not (bin_dir / "azexec").exists():
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        subprocess.run([str(bin_dir / "pip"), "install", "-q", str(ROOT), *also], check=True)
    return bin_dir


def peak_rss_kib(argv: list[str], runs: int) -> int:
    """Median peak RSS of ARGV's process; Linux keeps the high-water mark across exec."""
    samples = []
    for _ in range(runs):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"bench: {argv} exited {proc.returncode}")
        samples.append(usage.ru_maxrss)
    return int(statistics.median(samples))


def instructions(line: str, work: Path) -> int:
    """Count the instructions LINE's process runs up to its exec (callgrind; PYTHONHASHSEED=0: dicts, and so the
    count, stay the same from run to run). The exec'd `true` is not counted: only what the launcher does."""
    out = work / "callgrind"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/%p", "--dump-before=execve"]
    subprocess.run(
        [*argv, *shlex.split(line)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # One dump per execve tried (execvp walks PATH): the first, and largest, holds everything before it.
    return max(
        int(line.split()[1])
        for dump in out.iterdir()
        for line in dump.read_text().splitlines()
        if line.startswith("summary:")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds, each in a new random order")
    parser.add_argument("--runs", type=int, default=10, help="runs per command per round")
    parser.add_argument("--venv", type=Path, help="reuse (or create) this virtualenv")
    args = parser.parse_args()

    hyperfine = ensure_hyperfine()
    work = Path(tempfile.mkdtemp(prefix="azexec-bench-"))
    bin_dir = make_venv(args.venv or work / "venv")
    venv = args.venv or work / "venv"
    crowded_bin = make_venv(venv.with_name(venv.name + "-crowded"), "azure-identity")
    python = str(bin_dir / "python")
    token = subprocess.run([python, "-c", DEMO_JWT_CODE], check=True, capture_output=True, text=True).stdout
    token_file = work / "t"
    token_file.write_text(token)
    token_file.chmod(0o600)
    env_file = work / "demo.env"
    env_file.write_text(f"AZURE_CLI_ACCESS_TOKEN={token}\n")
    env_file.chmod(0o600)
    azexec, dotenv, floor = str(bin_dir / "azexec"), str(bin_dir / "dotenv"), str(ROOT / "bench" / "floor.py")
    floor_lazy = str(ROOT / "bench" / "floor_lazy_jwks.py")

    # (label, command line for hyperfine -N, argv for the memory probe)
    commands = {
        "env floor": f"env AZURE_CLI_ACCESS_TOKEN={token} true",
        "python -c pass": f"{python} -c pass",
        "design floor (file)": f"{python} {floor} -q --token-file {token_file} -- true",
        "design floor (env file)": f"{python} {floor} -q --env-file {env_file} -- true",
        "floor, lazy jwks (what-if)": f"{python} {floor_lazy} -q --token-file {token_file} -- true",
        "dotenv run": f"{dotenv} -f {env_file} run true",
        "azexec --token-file": f"{azexec} -q --token-file {token_file} -- true",
        "azexec --token-file, crowded": f"{crowded_bin / 'azexec'} -q --token-file {token_file} -- true",
        "azexec --env-file": f"{azexec} -q --env-file {env_file} -- true",
        "azexec --token-cmd": f"{azexec} -q --token-cmd 'cat {token_file}' -- true",
        "azexec --dry-run": f"{azexec} -q --dry-run --token-file {token_file} -- true",
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    shuffle = random.Random(20261125)
    for _ in range(args.rounds):
        # hyperfine runs one command's runs back to back: short rounds in a new
        # order each time spread the machine's drift over every command alike.
        order = list(commands)
        shuffle.shuffle(order)
        export = work / "round.json"
        hyperfine_args = ["-N", "-w", "3", "-r", str(args.runs), "--style", "none", "--export-json", str(export)]
        subprocess.run(
            [hyperfine, *hyperfine_args, *(commands[label] for label in order)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for label, result in zip(order, json.loads(export.read_text())["results"], strict=True):
            times[label] += result["times"]
    median = {label: statistics.median(samples) * 1000 for label, samples in times.items()}
    memory = {
        label: peak_rss_kib(["sh", "-c", f"exec {line}"] if "'" in line else line.split(), 10)
        for label, line in commands.items()
        if label != "env floor"
    }

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{args.rounds} rounds x {args.runs} runs"
    )
    print(f"{'command':<26}{'median ms':>10}{'peak RSS MiB':>14}")
    for label, ms in median.items():
        rss = f"{memory[label] / 1024:.1f}" if label in memory else "-"
        print(f"{label:<26}{ms:>10.1f}{rss:>14}")
    floor_file, floor_env = median["design floor (file)"], median["design floor (env file)"]
    dotenv_run = median["dotenv run"]
    print()
    ratios = [
        ("azexec --token-file / design floor (file)", median["azexec --token-file"] / floor_file, "target <= 1.10"),
        ("azexec --env-file / design floor (env file)", median["azexec --env-file"] / floor_env, "target <= 1.10"),
        ("azexec --token-file / dotenv run", median["azexec --token-file"] / dotenv_run, ""),
        (
            "crowded venv / clean (azexec --token-file)",
            median["azexec --token-file, crowded"] / median["azexec --token-file"],
            "target <= 1.10",
        ),
        ("design floor (file) / dotenv run", floor_file / dotenv_run, ""),
        ("floor, lazy jwks (what-if) / dotenv run", median["floor, lazy jwks (what-if)"] / dotenv_run, ""),
    ]
    for label, ratio, target in ratios:
        print(f"{label:<46}{ratio:.2f}x  {target}")
    extra = (memory["azexec --token-file"] - memory["design floor (file)"]) / 1024
    print(f"peak memory, azexec --token-file - design floor: {extra:+.1f} MiB  (target <= +2)")
    if shutil.which("valgrind"):
        print()
        counted = {
            label: instructions(commands[label], work)
            for label in ("design floor (file)", "azexec --token-file", "design floor (env file)", "azexec --env-file")
        }
        for label, count in counted.items():
            print(f"{label:<26}{count / 1e6:>10.1f} M instructions")
        file_ratio = counted["azexec --token-file"] / counted["design floor (file)"]
        env_ratio = counted["azexec --env-file"] / counted["design floor (env file)"]
        print(f"{'azexec --token-file / design floor (file)':<46}{file_ratio:.3f}x in instructions  target <= 1.10")
        print(f"{'azexec --env-file / design floor (env file)':<46}{env_ratio:.3f}x in instructions  target <= 1.10")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
