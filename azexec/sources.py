"""Read a credential from where people keep it: stdin, a file, a command, a variable, a .env file.

Nothing here writes anything, and no message quotes what a source held.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from typing import NamedTuple

from azexec.errors import TokenSourceError

#: A source may hold the token or a JSON document around it, never more than this.
MAX_SOURCE_BYTES = 1 << 20

TOKEN_VAR = "AZURE_CLI_ACCESS_TOKEN"  # noqa: S105 - a variable name, not a secret
SUBSCRIPTION_VAR = "AZURE_CLI_SUBSCRIPTION_ID"
TENANT_VAR = "AZURE_CLI_TENANT_ID"

_JSON_TOKEN_KEYS = ("accessToken", "access_token")
_KEYS_HINT = (
    'expected the bare token, or JSON with "accessToken" '
    '(az account get-access-token) or "access_token" (an OAuth2 token response)'
)


class Sourced(NamedTuple):
    """A value and where it came from, e.g. ``--env-file .env``."""

    value: str
    origin: str


class Credential(NamedTuple):
    """What one source supplied; any field may be missing."""

    origin: str
    token: Sourced | None = None
    subscription: Sourced | None = None
    tenant: Sourced | None = None
    warnings: tuple[str, ...] = ()


def from_stdin(origin: str = "--token-stdin") -> Credential:
    """Read standard input to EOF, or prompt without echo when it is a terminal."""
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        text = getpass.getpass("Azure access token (input hidden): ")
    else:
        text = _decode(_read_fd(0, origin), origin)
    return parse(text, origin)


def from_file(path: str) -> Credential:
    """Read a token file; ``-`` is stdin. Warn when others may read a regular file."""
    if path == "-":
        return from_stdin("--token-file -")
    origin = f"--token-file {path}"
    data, warnings = _read_path(path, origin)
    credential = parse(_decode(data, origin), origin)
    return credential._replace(warnings=credential.warnings + warnings)


def from_env(name: str, environ: Mapping[str, str]) -> Credential:
    """Take the token from azexec's own environment variable NAME."""
    origin = f"--token-env {name}"
    text = environ.get(name)
    if text is None:
        raise TokenSourceError(f"{origin}: the variable is not set", "export it, or use another source")
    return parse(text, origin)


def from_command(command: str, timeout: float) -> Credential:
    """Run COMMAND without a shell and take the token from its stdout."""
    from azexec import tokencmd

    origin = "--token-cmd"
    return parse(_decode(tokencmd.run(command, timeout, MAX_SOURCE_BYTES), origin), origin)


def from_env_file(path: str) -> Credential:
    """Take the three AZURE_CLI_* values, and nothing else, from a dotenv file."""
    import io

    from dotenv import dotenv_values

    origin = f"--env-file {path}"
    data, warnings = _read_path(path, origin)
    # Parse from memory: python-dotenv would silently read a missing file as empty.
    values = dotenv_values(stream=io.StringIO(_decode(data, origin)))

    def pick(key: str) -> Sourced | None:
        value = values.get(key)
        return Sourced(value, origin) if value else None

    token = pick(TOKEN_VAR)
    return Credential(
        origin=origin,
        token=token,
        subscription=pick(SUBSCRIPTION_VAR),
        tenant=pick(TENANT_VAR),
        # Others reading the file matters only when it holds the secret.
        warnings=warnings if token else (),
    )


def parse(text: str, origin: str) -> Credential:
    """Turn a source's text into a credential: a bare token or a JSON token document."""
    text = text.strip()
    if not text:
        raise TokenSourceError(f"{origin} is empty", "it should hold the access token")
    if text[0] not in "{[":
        return Credential(origin=origin, token=Sourced(text, origin))

    import json

    try:
        document = json.loads(text)
    except ValueError as e:
        where = f" (line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
        raise TokenSourceError(f"{origin} starts like JSON but is not valid JSON{where}", _KEYS_HINT) from None
    if not isinstance(document, dict):
        raise TokenSourceError(f"{origin} holds JSON that is not an object", _KEYS_HINT)
    key = next((k for k in _JSON_TOKEN_KEYS if k in document), None)
    if key is None:
        raise TokenSourceError(f"{origin} holds JSON without an access token", _KEYS_HINT)

    def field(name: str) -> Sourced | None:
        value = document.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise TokenSourceError(f'{origin}: "{name}" is not a string', _KEYS_HINT)
        return Sourced(value.strip(), f"{origin} ({name})")

    token = field(key)
    if token is None:
        raise TokenSourceError(f'{origin}: "{key}" is empty', "get a fresh token")
    return Credential(origin=origin, token=token, subscription=field("subscription"), tenant=field("tenant"))


def _read_path(path: str, origin: str) -> tuple[bytes, tuple[str, ...]]:
    """Read PATH (a file, a FIFO, /dev/fd/N) and say whether others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TokenSourceError(f"{origin}: no such file", "check the path") from None
    except PermissionError:
        raise TokenSourceError(f"{origin}: permission denied", "check the file's owner and mode") from None
    except OSError as e:
        raise TokenSourceError(f"{origin}: {e.strerror}", "check the path") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise TokenSourceError(f"{origin} is a directory", "name the file that holds the token")
        warnings: tuple[str, ...] = ()
        # Like ssh with private keys: pipes and devices are private by nature.
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o044:
            mode = stat.S_IMODE(info.st_mode)
            warnings = (f"{path} is readable by other users (mode {mode:04o}); run: chmod 600 {path}",)
        return _read_fd(fd, origin), warnings
    finally:
        os.close(fd)


def _read_fd(fd: int, origin: str) -> bytes:
    """Read FD to EOF, refusing more than MAX_SOURCE_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = os.read(fd, 65536)
        except IsADirectoryError:
            raise TokenSourceError(f"{origin} is a directory", "name the file that holds the token") from None
        except OSError as e:
            raise TokenSourceError(f"{origin}: {e.strerror}", "check the source") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_SOURCE_BYTES:
            raise TokenSourceError(f"{origin} holds more than 1 MiB", "point it at the token alone")
        chunks.append(chunk)


def _decode(data: bytes, origin: str) -> str:
    """Decode UTF-8, dropping a byte-order mark that Windows editors add."""
    try:
        # removeprefix rather than the utf-8-sig codec: one import less at start-up.
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise TokenSourceError(f"{origin} is not UTF-8 text", "it should hold the access token") from None
