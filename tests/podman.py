"""Rootful podman of the suite's own: a network namespace and a private mount namespace it makes, an image built here.

Debian's podman 4.3.1 is daemonless: every podman command reads the same
configuration and storage. Here every one runs inside one holder process's
namespaces, made for the session: its own network (podman's bridge, podman0,
and its firewall rules live there, made when a container starts), and a
private mount namespace in which /run and /var/lib are empty tmpfs and
/etc/containers is a copy holding this suite's containers.conf and
storage.conf (storage in a temporary directory). Nothing is left in /run,
/etc/containers or /var/lib/containers: the holder's exit takes every mount
with it, and the directory and the network namespace are removed.

The machine lacks CAP_SYS_RESOURCE, so each container is run with
--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 (ULIMITS).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dockerd import ROOTFS
from netns import ip

IMAGE = "localhost/azexec-test-python:bookworm"
#: What a container is run with here: limits the machine lets a container keep (it lacks CAP_SYS_RESOURCE).
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
#: How long making the namespaces, importing the image or stopping may take.
SECONDS = 300

CONTAINERS_CONF = """[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"
tmp_dir = "{root}/tmp"
[network]
network_backend = "netavark"
network_config_dir = "{root}/networks"
"""
STORAGE_CONF = """[storage]
driver = "overlay"
graphroot = "{root}/storage"
runroot = "/run/containers/storage"
"""
#: Run by the holder in its new mount namespace, then it sleeps until stopped.
SETUP = """set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
cp -a /etc/containers/. "$1/etc/"
cp "$1/containers.conf" "$1/storage.conf" "$1/etc/"
mount --bind "$1/etc" /etc/containers
echo ready
exec sleep 86400
"""


class Podman:
    """The suite's podman: the holder of its namespaces, and argv that runs a command inside them."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="azxp"))
        self.namespace = f"azx{os.getpid()}p"
        self.holder: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Make the namespaces, and import IMAGE from the root file system install-test-tools made."""
        assert os.geteuid() == 0, "the podman tests run rootful podman, which needs root (CI runs as root)"
        assert shutil.which("podman"), "podman is missing: scripts/install-test-tools installs it"
        assert (ROOTFS / "usr" / "bin" / "python3").exists(), f"{ROOTFS} is missing: run scripts/install-test-tools"
        for name in ("etc", "tmp", "networks"):
            (self.root / name).mkdir()
        (self.root / "containers.conf").write_text(CONTAINERS_CONF.format(root=self.root))
        (self.root / "storage.conf").write_text(STORAGE_CONF.format(root=self.root))
        ip("netns", "add", self.namespace)
        ip("-n", self.namespace, "link", "set", "lo", "up")
        argv = ["nsenter", f"--net=/run/netns/{self.namespace}", "unshare", "--mount", "--propagation", "private"]
        log = self.root / "holder.log"
        with log.open("w") as errors:
            self.holder = subprocess.Popen(
                [*argv, "sh", "-c", SETUP, "setup", str(self.root)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        assert self.holder.stdout is not None
        ready = self.holder.stdout.readline()
        assert ready == "ready\n", f"the namespaces were not made: {log.read_text()}"
        tar = subprocess.Popen(["tar", "-C", str(ROOTFS), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        with tar:
            done = subprocess.run(
                self.inside(["podman", "import", "-q", "-", IMAGE]),
                stdin=tar.stdout,
                capture_output=True,
                timeout=SECONDS,
            )
        assert done.returncode == 0, done.stderr.decode()

    def inside(self, argv: Sequence[str]) -> list[str]:
        """Return ARGV to run in the holder's network and mount namespaces (nothing else changes)."""
        assert self.holder is not None, "started"
        return ["nsenter", "-t", str(self.holder.pid), "--net", "--mount", *argv]

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run podman inside."""
        done = subprocess.run(self.inside(["podman", *args]), capture_output=True, text=True, timeout=SECONDS)
        if check:
            assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
        return done

    def stop(self) -> None:
        """Remove every container, end the holder (its mounts go with it), remove the namespace and the files."""
        if self.holder is not None and self.holder.poll() is None:
            self.podman("rm", "--all", "--force", check=False)
            self.holder.send_signal(signal.SIGTERM)
            self.holder.wait(timeout=SECONDS)
        if self.holder is not None and self.holder.stdout is not None:
            self.holder.stdout.close()
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=20, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
