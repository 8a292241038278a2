"""Throughput of --mask: pass 200 MiB of log-like text through it, against plain cat; and the masking alone
with 1, 10 and 100 secrets (a long --identity-server job hands out a token per resource and per refresh).

Usage: python3 bench/mask.py [--mib N] [--azexec PATH] [--rounds N]

Standard library and hyperfine only; the ratio is what matters on a shared machine. Without --azexec, azexec
is installed (not editable) into a virtualenv of its own, so that its bytecode is compiled as for a user.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from startup import make_venv  # bench/startup.py, beside this file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--azexec", help="the azexec to time (default: one installed here, in a new virtualenv)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the 1/10/100-secret runs")
    args = parser.parse_args()
    hyperfine = shutil.which("hyperfine") or sys.exit("bench: install hyperfine (apt-get install hyperfine)")

    work = Path(tempfile.mkdtemp(prefix="azexec-mask-"))
    args.azexec = args.azexec or str(make_venv(work / "venv") / "azexec")
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    claims = b'{"aud":"https://management.azure.com/","exp":4102444800}'
    token = header + b"." + base64.urlsafe_b64encode(claims).rstrip(b"=") + b".c2lnbmF0dXJl"
    (work / "t").write_bytes(token)
    (work / "t").chmod(0o600)
    # Log-like lines, with the token in one line of a thousand, some of them cut by a write boundary.
    line = b"2026-11-25T12:00:00Z DEBUG msrest.http_logger: Response headers: 'x-ms-request-id': 'abc'\n"
    block = line * 999 + b"Authorization: Bearer " + token + b"\n"
    big = work / "big.log"
    with big.open("wb") as f:
        for _ in range(args.mib * (1 << 20) // len(block) + 1):
            f.write(block)
    size = big.stat().st_size / (1 << 20)

    export = work / "result.json"
    commands = [f"cat {big}", f"{args.azexec} -q --mask --token-file {work / 't'} -- cat {big}"]
    subprocess.run(
        [
            hyperfine,
            "-N",
            "--output=pipe",
            "-w",
            "1",
            "-r",
            str(args.runs),
            "--style",
            "none",
            "--export-json",
            str(export),
            *commands,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cat, masked = (r["median"] for r in json.loads(export.read_text())["results"])
    print(
        f"{size:.0f} MiB, {os.cpu_count()} cores: cat {cat:.2f} s, azexec --mask {masked:.2f} s "
        f"({size / masked:.0f} MiB/s), ratio {masked / cat:.1f}x"
    )
    print(f"Masker.feed in process, 64 KiB chunks each ending in a 1,203-character token: {feed_rate():.1f} GiB/s")
    secrets_scaling(args.rounds)
    shutil.rmtree(work, ignore_errors=True)


def secrets_scaling(rounds: int, mib: int = 100) -> None:
    """MIB of log through Masker.feed in 64 KiB reads, holding 1, 10 and 100 tokens of one issuer (the same
    header, as Entra ID's are) and the identity server's random secrets, one line in a thousand carrying a token:
    interleaved ROUNDS, each N's time against 1's in the same round."""
    import statistics
    import time

    from azexec.parts.mask import Masker

    header = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"RS256","x5t":"MnC_VZcATfM5pOYiJHMba9goEKY"}').rstrip(b"=")

    def token(n: int) -> bytes:
        claims = json.dumps({"aud": f"https://r{n}.example/", "n": n, "pad": "x" * 900}).encode()
        return header + b"." + base64.urlsafe_b64encode(claims).rstrip(b"=") + b".c2lnbmF0dXJl"

    tokens = [token(n) for n in range(100)]
    server = [base64.urlsafe_b64encode(os.urandom(24)).rstrip(b"=") for _ in range(6)]
    line = b"2026-11-25T12:00:00Z DEBUG msrest.http_logger: Response headers: 'x-ms-request-id': 'abc'\n"
    block = line * 999 + b"Authorization: Bearer " + tokens[7] + b"\n"
    data = block * (mib * (1 << 20) // len(block))
    times: dict[int, list[float]] = {1: [], 10: [], 100: []}
    for _ in range(rounds):
        for count in times:
            masker = Masker(*tokens[:count], *server)
            started = time.perf_counter()
            for offset in range(0, len(data), 1 << 16):
                masker.feed(data[offset : offset + (1 << 16)])
            masker.flush()
            times[count].append(time.perf_counter() - started)
    ratios = {count: [t / one for t, one in zip(times[count], times[1], strict=True)] for count in times}
    for count, spent in times.items():
        spread = f"{min(ratios[count]):.2f}-{max(ratios[count]):.2f}x"
        print(
            f"{mib} MiB, {count:3d} tokens + 6 server secrets: median {statistics.median(spent):.2f} s, "
            f"against 1 token {statistics.median(ratios[count]):.2f}x ({spread} over {rounds} rounds)"
        )


def feed_rate(total: int = 200 << 20) -> float:
    """Time the masking alone (no pipes, no threads): GiB/s through Masker.feed, the best of three."""
    import time

    from azexec.parts.mask import Masker

    secret = b"eyJ" + base64.urlsafe_b64encode(os.urandom(900)).rstrip(b"=")
    line = b"2026-12-02T10:00:00Z INFO deploying resource group rg-app in westeurope, step 42 of 100\n"
    chunk = (line * (65536 // len(line) + 1))[: 65536 - len(secret)] + secret
    masker = Masker(secret)
    rates = []
    for _ in range(3):
        started, done = time.perf_counter(), 0
        while done < total:
            masker.feed(chunk)
            done += len(chunk)
        rates.append(total / (time.perf_counter() - started) / 2**30)
    return max(rates)


if __name__ == "__main__":
    main()
