"""A docker daemon of the suite's own, in a network namespace it makes, with a Python image built locally.

Debian's dockerd runs inside a network namespace made here (its docker0 and
every container's veth live there, nothing is configured in the suite's own
network), with its data, state and socket in a temporary directory; it is
stopped and everything removed at the end of the session. The image is Debian
bookworm's minbase with python3, made by scripts/install-test-tools with
debootstrap (no registry is reachable) and imported here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from netns import Network, ip

IMAGE = "azexec-test-python:bookworm"
#: Where scripts/install-test-tools leaves the root file system it made with debootstrap.
ROOTFS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "azexec-tests" / "rootfs-bookworm"
#: The Python inside IMAGE (bookworm's): the SDK copied in must be built for it.
IMAGE_PYTHON = (3, 11)
#: How long dockerd may take to answer, or to stop.
DAEMON_SECONDS = 60


class Docker:
    """The suite's dockerd: its network namespace, its socket, and the environment that points docker at it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="azxd"))  # short: containerd's socket path must fit in 108 bytes
        self.namespace = f"azx{os.getpid()}d"
        self.socket = self.root / "sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.root / "dockerd.log"

    def env(self, **extra: str) -> dict[str, str]:
        """Return this process's environment with DOCKER_HOST set to this daemon, plus EXTRA."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", **extra}

    def start(self) -> None:
        """Make the namespace, start dockerd in it, wait until it answers, and import IMAGE."""
        assert os.geteuid() == 0, "the container tests start dockerd, which needs root (CI runs as root)"
        assert shutil.which("dockerd"), "dockerd is missing: scripts/install-test-tools installs docker.io"
        assert (ROOTFS / "usr" / "bin" / "python3").exists(), f"{ROOTFS} is missing: run scripts/install-test-tools"
        ip("netns", "add", self.namespace)
        ip("-n", self.namespace, "link", "set", "lo", "up")
        argv = Network.inside(self.namespace, ["dockerd", "--data-root", str(self.root / "data")])
        argv += [
            "--exec-root",
            str(self.root / "x"),
            "--pidfile",
            str(self.root / "pid"),
            "-H",
            f"unix://{self.socket}",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + DAEMON_SECONDS
        while self.docker("info", check=False).returncode != 0:
            assert self.process.poll() is None, f"dockerd exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"dockerd did not answer within {DAEMON_SECONDS}s"
            time.sleep(0.2)
        tar = subprocess.Popen(["tar", "-C", str(ROOTFS), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        with tar:
            done = subprocess.run(
                [_docker(), "import", "-", IMAGE], stdin=tar.stdout, env=self.env(), capture_output=True, timeout=300
            )
        assert done.returncode == 0, done.stderr.decode()

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the docker client against this daemon."""
        done = subprocess.run([_docker(), *args], env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done

    def stop(self) -> None:
        """Stop dockerd (its containers with it), remove the namespace and every file."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=DAEMON_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=DAEMON_SECONDS)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=20, check=False)
        # A dockerd killed mid-way may leave overlay mounts: unmount what is under the root before removing it.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            mounts = Path("/proc/self/mounts").read_text().splitlines()
            for target in sorted({line.split()[1] for line in mounts if str(self.root) in line}, reverse=True):
                subprocess.run(["umount", "-l", target], capture_output=True, timeout=20, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _docker() -> str:
    found = shutil.which("docker")
    assert found, "the docker client is missing: scripts/install-test-tools installs docker.io"
    return found


def copy_distribution(name: str, target: Path) -> list[str]:
    """Copy NAME and what it requires, as installed in this Python, into TARGET; return their names.

    The real azure-identity and its dependencies, for a container's Python,
    from the wheels this suite installed: no registry is needed inside it.
    """
    from packaging.requirements import Requirement

    copied: list[str] = []
    pending = [name]
    while pending:
        distribution = importlib.metadata.distribution(pending.pop())
        canonical = distribution.metadata["Name"].lower().replace("_", "-")
        if canonical in copied:
            continue
        copied.append(canonical)
        for path in distribution.files or ():
            source = Path(str(distribution.locate_file(path)))
            if path.parts[0] == ".." or "__pycache__" in path.parts or not source.is_file():
                continue  # scripts in bin/, and bytecode for another Python
            destination = target / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return copied
