"""Where the identity server listens, and the name its clients reach it by (--listen, --advertise).

By default it listens on 127.0.0.1 only. --listen makes it listen on one other
address of this machine, for containers: `docker` (the address of Linux's
docker0 bridge, the gateway every container on docker's default network
reaches), `podman` (the gateway of rootful podman's default network, asked of
podman) or an IP address the user names. Never a wildcard address: what listens
beyond loopback is exactly one address, chosen by the user.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
from typing import NamedTuple

from azexec.errors import PartFailed

#: The default listener.
LOOPBACK = "127.0.0.1"


class Runtime(NamedTuple):
    """A container runtime, as --listen names it: the bridge to listen on, the name its containers use."""

    #: --listen's word for it.
    word: str
    #: The Linux bridge of its default network, whose IPv4 address is the gateway its containers reach.
    bridge: str
    #: What its containers resolve to their host (given to COMMAND's clients).
    host_name: str
    #: The daemon that makes the bridge.
    daemon: str
    #: What to do where that bridge is not on the host (the runtime runs in a VM: macOS, Windows).
    elsewhere: str
    #: The command that prints the gateway of its default network, for a runtime whose bridge exists only while a
    #: container is attached to it (the address is then asked, and bound before the bridge exists); None: the
    #: bridge is there while the daemon runs, and its address is read off it.
    ask: tuple[str, ...] | None = None
    #: What to do when azexec is not root: the runtime then runs rootless, its containers in a network of its own.
    rootless: str | None = None


#: Docker: docker0 on Linux; `--add-host host.docker.internal:host-gateway` makes the name resolve to its gateway.
DOCKER_RUNTIME = Runtime(
    "docker",
    "docker0",
    "host.docker.internal",
    "dockerd",
    f"with Docker Desktop, use --listen {LOOPBACK} --advertise host.docker.internal",
)
#: Rootful podman: netavark's podman0 (CNI's cni-podman0), made when the first container starts on the default
#: network and removed when the last one leaves; its containers resolve host.containers.internal to its gateway.
PODMAN_RUNTIME = Runtime(
    "podman",
    "podman0",
    "host.containers.internal",
    "podman",
    f"with podman machine, try --listen {LOOPBACK} --advertise host.containers.internal",
    ask=("podman", "network", "inspect", "podman", "--format", "{{range .Subnets}}{{.Gateway}} {{end}}"),
    rootless="rootless podman's containers have a network of their own; name this machine's address with --listen"
    " ADDRESS --advertise host.containers.internal",
)
#: The container runtimes --listen knows by name.
RUNTIMES = {runtime.word: runtime for runtime in (DOCKER_RUNTIME, PODMAN_RUNTIME)}
#: --listen's word for the docker0 bridge's address.
DOCKER = DOCKER_RUNTIME.word
#: Every network's broadcast address: Linux lets TCP bind it, and nothing can connect to it.
LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
#: Where Linux shows its routing tables, each local broadcast address marked BROADCAST.
_FIB_TRIE = "/proc/net/fib_trie"

#: Linux's ioctl asking an interface's IPv4 address (linux/sockios.h); an ifreq is 40 bytes on 64-bit Linux.
_SIOCGIFADDR = 0x8915
_IFREQ_SIZE = 40
#: A host name: labels of letters, digits and hyphens (RFC 1123), 253 characters at most.
_HOST_NAME = r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"


class Listen(NamedTuple):
    """Where the identity server listens and the name it is advertised under, as the user chose."""

    #: A runtime's word (RUNTIMES), or an IP address (never a wildcard).
    address: str = LOOPBACK
    #: The host name COMMAND's clients are given, or None: the address itself.
    advertised: str | None = None

    def runtime(self) -> Runtime | None:
        """Return the container runtime whose bridge is listened on, or None: an address."""
        return RUNTIMES.get(self.address)

    def beyond_loopback(self) -> bool:
        """Tell whether the listener is reachable from anywhere but this machine's loopback."""
        return self.runtime() is not None or not ipaddress.ip_address(self.address).is_loopback

    def advertised_name(self) -> str | None:
        """Return the host name clients are given instead of the address, or None."""
        runtime = self.runtime()
        return self.advertised or (runtime.host_name if runtime is not None else None)

    def name(self) -> str:
        """Return what clients are given: the advertised name, else the address."""
        return self.advertised_name() or self.address


def check_address(text: str) -> str | None:
    """Return why TEXT cannot be --listen's address, or None: a runtime's word or one IP address, never a wildcard."""
    if text in RUNTIMES:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        words = " nor ".join(f"'{word}'" for word in RUNTIMES)
        return f"is neither {words} nor an IP address such as 172.17.0.1"
    mapped = getattr(address, "ipv4_mapped", None)
    if address.is_unspecified or (mapped is not None and mapped.is_unspecified):
        return "is a wildcard address, which would serve the token on every network; name one address"
    if address.is_multicast or (mapped is not None and mapped.is_multicast):
        return "is a multicast address; name an address of this machine"
    if LIMITED_BROADCAST in (address, mapped):
        return "is the broadcast address, which no client can connect to; name an address of this machine"
    return None


def canonical(address: str) -> str:
    """Return ADDRESS (a valid one) as URLs and Host headers spell it: a runtime's word stays a word."""
    return address if address in RUNTIMES else str(ipaddress.ip_address(address))


def check_name(text: str) -> str | None:
    """Return why TEXT cannot be --advertise's host name, or None: a host name or an IP address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None if re.fullmatch(_HOST_NAME, text) else "is not a host name such as host.docker.internal"
    return None


def resolve(address: str) -> str:
    """Return the IP address to bind for ADDRESS, as URLs and Host headers spell it: a runtime's word becomes its
    bridge's address.

    A subnet's broadcast address (172.17.255.255) is this machine's to bind on Linux, and useless: refused.
    """
    if address in RUNTIMES:
        return bridge_address(RUNTIMES[address])
    bound = canonical(address)
    if _subnet_broadcast(bound):
        raise PartFailed(
            f"--listen {bound} is a broadcast address of this machine, which no client can connect to",
            "name the interface's own address (ip -4 addr shows it)",
        )
    return bound


def _subnet_broadcast(address: str) -> bool:
    """Tell whether ADDRESS is a local broadcast address, as Linux's routing table says; elsewhere, False."""
    if ":" in address:
        return False
    try:
        with open(_FIB_TRIE, encoding="ascii", errors="replace") as table:
            text = table.read(16 << 20)
    except OSError:
        return False
    # "|-- 10.213.0.255" then its routes, one "/32 link BROADCAST" among them.
    found = re.search(rf"\|-- {re.escape(address)}\n(?:[ \t]+/\d+ [^\n]*\n)*?[ \t]+/\d+ \w+ BROADCAST\b", text)
    return found is not None


def check_runtime(runtime: Runtime) -> None:
    """Refuse RUNTIME's word where its bridge cannot be on this machine: not Linux, or a rootless runtime."""
    if not sys.platform.startswith("linux"):
        # Docker Desktop and podman machine have no bridge on the host: a VM forwards the name to its loopback.
        raise PartFailed(
            f"--listen {runtime.word} looks for Linux's {runtime.bridge} bridge, which this system has not",
            runtime.elsewhere,
        )
    if runtime.rootless is not None and os.geteuid() != 0:
        refused = f"--listen {runtime.word} serves rootful {runtime.word}'s bridge, and azexec is not root"
        raise PartFailed(refused, runtime.rootless)


def gateway(runtime: Runtime, answer: bytes) -> str:
    """Return the IPv4 gateway in RUNTIME's answer to its ask (one address, checked as --listen's would be)."""
    words = answer.decode("ascii", "replace").split()
    found = [word for word in words if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", word)]
    if len(found) != 1 or check_address(found[0]) is not None or not ipaddress.ip_address(found[0]).is_private:
        shown = " ".join(words)[:80] or "nothing"
        raise PartFailed(
            f"--listen {runtime.word}: {runtime.daemon} gave {shown!r} as its default network's gateway, not one"
            " private IPv4 address",
            "name the address with --listen ADDRESS",
        )
    return canonical(found[0])


def bridge_address(runtime: Runtime) -> str:
    """Return the IPv4 address of RUNTIME's Linux bridge: the gateway of its default network."""
    hint = f"is {runtime.daemon} running? Or name the address with --listen ADDRESS"
    check_runtime(runtime)
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack(f"{_IFREQ_SIZE}s", runtime.bridge.encode()))
        except OSError:
            raise PartFailed(f"this machine has no {runtime.bridge} bridge with an IPv4 address", hint) from None
    # struct ifreq: the name (16 bytes), then a sockaddr_in: family (2), port (2), address (4).
    return socket.inet_ntoa(answer[20:24])


def url_host(host: str) -> str:
    """Return HOST as a URL or a Host header spells it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
