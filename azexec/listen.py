"""Where the identity server listens, and the name its clients reach it by (--listen, --advertise).

By default it listens on 127.0.0.1 only. --listen makes it listen on one other
address of this machine, for containers: `docker` (the address of Linux's
docker0 bridge, the gateway every container on docker's default network
reaches) or an IP address the user names. Never a wildcard address: what
listens beyond loopback is exactly one address, chosen by the user.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from typing import NamedTuple

from azexec.errors import PartFailed

#: --listen's word for the docker0 bridge's address.
DOCKER = "docker"
#: The bridge docker makes for its default network on Linux.
DOCKER_BRIDGE = "docker0"
#: What a container resolves to its host: Docker Desktop's name, and what
#: `--add-host host.docker.internal:host-gateway` makes it on Linux.
DOCKER_HOST_NAME = "host.docker.internal"
#: The default listener.
LOOPBACK = "127.0.0.1"
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

    #: DOCKER, or an IP address (never a wildcard).
    address: str = LOOPBACK
    #: The host name COMMAND's clients are given, or None: the address itself.
    advertised: str | None = None

    def beyond_loopback(self) -> bool:
        """Tell whether the listener is reachable from anywhere but this machine's loopback."""
        return self.address == DOCKER or not ipaddress.ip_address(self.address).is_loopback

    def advertised_name(self) -> str | None:
        """Return the host name clients are given instead of the address, or None."""
        return self.advertised or (DOCKER_HOST_NAME if self.address == DOCKER else None)

    def name(self) -> str:
        """Return what clients are given: the advertised name, else the address."""
        return self.advertised_name() or self.address


def check_address(text: str) -> str | None:
    """Return why TEXT cannot be --listen's address, or None: DOCKER or one IP address, never a wildcard."""
    if text == DOCKER:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "is neither 'docker' nor an IP address such as 172.17.0.1"
    mapped = getattr(address, "ipv4_mapped", None)
    if address.is_unspecified or (mapped is not None and mapped.is_unspecified):
        return "is a wildcard address, which would serve the token on every network; name one address"
    if address.is_multicast or (mapped is not None and mapped.is_multicast):
        return "is a multicast address; name an address of this machine"
    if LIMITED_BROADCAST in (address, mapped):
        return "is the broadcast address, which no client can connect to; name an address of this machine"
    return None


def canonical(address: str) -> str:
    """Return ADDRESS (a valid one) as URLs and Host headers spell it: DOCKER stays a word."""
    return address if address == DOCKER else str(ipaddress.ip_address(address))


def check_name(text: str) -> str | None:
    """Return why TEXT cannot be --advertise's host name, or None: a host name or an IP address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None if re.fullmatch(_HOST_NAME, text) else "is not a host name such as host.docker.internal"
    return None


def resolve(address: str) -> str:
    """Return the IP address to bind for ADDRESS, as URLs and Host headers spell it: DOCKER becomes docker0's.

    A subnet's broadcast address (172.17.255.255) is this machine's to bind on Linux, and useless: refused.
    """
    if address == DOCKER:
        return docker_bridge()
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


def docker_bridge() -> str:
    """Return the IPv4 address of Linux's docker0 bridge: the gateway of docker's default network."""
    hint = "is dockerd running? Or name the address with --listen ADDRESS"
    if not sys.platform.startswith("linux"):
        # Docker Desktop has no bridge on the host: it forwards host.docker.internal to the host's loopback.
        raise PartFailed(
            f"--listen {DOCKER} looks for Linux's {DOCKER_BRIDGE} bridge, which this system has not",
            f"with Docker Desktop, use --listen {LOOPBACK} --advertise {DOCKER_HOST_NAME}",
        )
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack(f"{_IFREQ_SIZE}s", DOCKER_BRIDGE.encode()))
        except OSError:
            raise PartFailed(f"this machine has no {DOCKER_BRIDGE} bridge with an IPv4 address", hint) from None
    # struct ifreq: the name (16 bytes), then a sockaddr_in: family (2), port (2), address (4).
    return socket.inet_ntoa(answer[20:24])


def url_host(host: str) -> str:
    """Return HOST as a URL or a Host header spells it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
