"""Make this Python look like macOS's to azexec: delete the names CPython has only on Linux.

On PYTHONPATH in the test suite's macOS-surface mode (`pytest --surface=macos`).
It takes itself off PYTHONPATH at once, so that COMMAND and everything azexec
starts inherit nothing of it. Names are taken from CPython's documentation
("Availability: Linux") and from what CPython's configure finds missing on macOS.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

LINUX_ONLY: dict[object, tuple[str, ...]] = {
    os: (
        "pipe2",
        "posix_fallocate",
        "posix_fadvise",
        "fdatasync",
        "sched_getaffinity",
        "sched_setaffinity",
        "sched_getscheduler",
        "sched_setscheduler",
        "sched_getparam",
        "sched_setparam",
        "sched_rr_get_interval",
        "sched_param",
        "memfd_create",
        "eventfd",
        "eventfd_read",
        "eventfd_write",
        "pidfd_open",
        "P_PIDFD",
        "getxattr",
        "setxattr",
        "listxattr",
        "removexattr",
        "copy_file_range",
        "splice",
        "getrandom",
        "getresuid",
        "getresgid",
        "setresuid",
        "setresgid",
        "unshare",
        "setns",
        "timerfd_create",
        "timerfd_settime",
        "timerfd_settime_ns",
        "timerfd_gettime",
        "timerfd_gettime_ns",
        "O_PATH",
        "O_TMPFILE",
        "O_DIRECT",
        "O_NOATIME",
        "O_LARGEFILE",
        "O_RSYNC",
        "RTLD_DEEPBIND",
    ),
    signal: (
        "sigwaitinfo",
        "sigtimedwait",
        "pidfd_send_signal",
        "SIGRTMIN",
        "SIGRTMAX",
        "SIGPWR",
        "SIGSTKFLT",
        "SIGPOLL",
        "SIGCLD",
    ),
    select: ("epoll",),
    socket: (
        "SO_PEERCRED",
        "SO_PASSCRED",
        "SO_BINDTODEVICE",
        "SO_MARK",
        "SOCK_CLOEXEC",
        "SOCK_NONBLOCK",
        "AF_NETLINK",
        "AF_PACKET",
    ),
}
#: Families of names, by prefix: the constants that go with the functions above.
LINUX_ONLY_PREFIXES: dict[object, tuple[str, ...]] = {
    os: (
        "POSIX_FADV_",
        "SCHED_BATCH",
        "SCHED_IDLE",
        "SCHED_RESET_ON_FORK",
        "MFD_",
        "EFD_",
        "XATTR_",
        "SPLICE_",
        "GRND_",
        "RWF_",
        "CLONE_",
        "TFD_",
    ),
    select: ("EPOLL",),
}

for module, names in LINUX_ONLY.items():
    for name in names:
        if hasattr(module, name):
            delattr(module, name)
for module, prefixes in LINUX_ONLY_PREFIXES.items():
    for name in [name for name in vars(module) if name.startswith(prefixes)]:
        delattr(module, name)
# signal.Signals still lists SIGRTMIN and SIGPWR; what azexec asks is hasattr(signal, …).

# socket imported selectors before epoll went: its choice is redone as it would be without epoll. macOS's own
# would be kqueue, which no Linux has; poll is what selectors takes next, and macOS has it too.
if "selectors" in sys.modules:
    import selectors

    if hasattr(selectors, "EpollSelector"):
        del selectors.EpollSelector
    selectors.DefaultSelector = selectors.PollSelector  # type: ignore[misc]

here = os.path.dirname(os.path.abspath(__file__))
rest = [
    entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry and os.path.abspath(entry) != here
]
if rest:
    os.environ["PYTHONPATH"] = os.pathsep.join(rest)
else:
    os.environ.pop("PYTHONPATH", None)
# Marks the process for the test that proves the mode took effect.
sys.azexec_surface = "macos"  # type: ignore[attr-defined]
