"""Where people keep a token: stdin, a file, a command, a variable, a .env file — one class each.

A token source is chosen once, from the options (see plan.py), and read for
the first token and again for every refresh. Nothing here writes anything,
and no message quotes what a source held.
"""

# No `from __future__ import annotations`: its string annotations cost a compile per NamedTuple field at
# import, on the start-up path (docs/development.md, "One exception to the style").

import os
import re
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from azexec.bounded import Limited, read_fd
from azexec.errors import MisplacedToken, TokenSourceError
from azexec.redact import REPLACEMENT, STDIN_HINT, Secret, looks_like_token, looks_secret, scrub, shell_quote, show

if TYPE_CHECKING:
    from azexec.tokencmd import Jobs

TOKEN_VAR = "AZURE_CLI_ACCESS_TOKEN"  # noqa: S105 - a variable name, not a secret
SUBSCRIPTION_VAR = "AZURE_CLI_SUBSCRIPTION_ID"
TENANT_VAR = "AZURE_CLI_TENANT_ID"
ENV_FILE_KEYS = (TOKEN_VAR, SUBSCRIPTION_VAR, TENANT_VAR)

_JSON_TOKEN_KEYS = ("accessToken", "access_token")
#: What an env file's line holding only a token is, and what to write instead (never the token itself).
BARE_TOKEN = "holds a bare value shaped like a token, not KEY=VALUE"  # noqa: S105 - a message
BARE_TOKEN_HINT = f"if it is the token, write it as {TOKEN_VAR}=… on that line"
#: How much of an OAuth error's error and error_description a message quotes.
MAX_QUOTED = 200
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
    token: Secret | None = None
    subscription: Sourced | None = None
    tenant: Sourced | None = None
    warnings: tuple[str, ...] = ()
    #: An env file that sets the token variable to nothing.
    empty_token: bool = False
    #: The line of an env file that holds a bare value shaped like a token (pasted without its KEY=).
    bare_token_line: int | None = None


class TokenSource(Protocol):
    """Where the token comes from: read for the first token, and again for each refresh."""

    #: How the user named it, e.g. ``--token-file t.jwt`` or ``AZEXEC_TOKEN_FILE t.jwt``.
    origin: str

    def rereadable(self) -> bool:
        """Tell whether reading again can give a fresh token."""

    def per_resource(self) -> bool:
        """Tell whether it can give a token for any resource ({resource} in a command)."""

    def costly(self) -> bool:
        """Tell whether reading it runs something: then a read that gave the same token back is not repeated at once."""

    def read(self, resource: str | None = None, *, jobs: "Jobs | None" = None) -> Credential:
        """Read a credential (for RESOURCE, where the source takes one).

        JOBS is given once COMMAND runs: reading then happens on any thread,
        without the terminal, and whatever it starts is JOBS' to stop.
        """


def _regular_file(path: str) -> bool:
    """Tell whether PATH is a regular file, which holds the same or a newer token when read again."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class _Source:
    """What most sources are: read once, for one audience, cheaply. A source class overrides what differs."""

    origin: str

    def rereadable(self) -> bool:
        return False

    def per_resource(self) -> bool:
        return False

    def costly(self) -> bool:
        return False


class _PathSource(_Source):
    """A source that is a path: named as the user gave it; a regular file is read again for a fresh token."""

    def __init__(self, path: str, *, label: str) -> None:
        self.path = path
        self.origin = f"{label} {show(path)}"

    def rereadable(self) -> bool:
        return _regular_file(self.path)


class Stdin(_Source):
    """Standard input, read to EOF, or a hidden prompt at a terminal: read once."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def read(self, resource: str | None = None, *, jobs: "Jobs | None" = None) -> Credential:
        data = _prompt_hidden(0, self.origin) if os.isatty(0) else read_fd(0, self.origin)
        return parse(decode(data, self.origin), self.origin)


class File(_PathSource):
    """A file, a FIFO or /dev/fd/N; a regular file is read again for a fresh token."""

    def read(self, resource: str | None = None, *, jobs: "Jobs | None" = None) -> Credential:
        data, warnings = _read_path(self.path, self.origin)
        credential = parse(decode(data, self.origin), self.origin)
        return credential._replace(warnings=credential.warnings + warnings)


class Variable(_Source):
    """One of azexec's own environment variables; COMMAND does not inherit it."""

    def __init__(self, name: str, environ: Mapping[str, str], *, label: str) -> None:
        self.name = name
        self.environ = environ
        self.origin = f"{label} {show(name)}"

    def read(self, resource: str | None = None, *, jobs: "Jobs | None" = None) -> Credential:
        text = self.environ.get(self.name)
        if text is None and looks_like_token(self.name):
            raise MisplacedToken(f"{self.origin} looks like a token, not a variable name", STDIN_HINT)
        if text is None:
            raise TokenSourceError(f"{self.origin}: the variable is not set", "export it, or use another source")
        return parse(text, self.origin)


class Command(_Source):
    """A command run without a shell (vault, pass, op, az); {resource} in it asks for any resource."""

    def __init__(self, command: str, *, timeout: float, label: str, mask_stderr: bool = False) -> None:
        self.command = command
        self.timeout = timeout
        self.origin = label
        #: --mask: its stderr in a log is passed on with the token masked (see tokencmd.run).
        self.mask_stderr = mask_stderr

    def rereadable(self) -> bool:
        return True

    def per_resource(self) -> bool:
        from azexec.tokencmd import takes_resource

        return takes_resource(self.command)

    def costly(self) -> bool:
        return True

    def read(self, resource: str | None = None, *, jobs: "Jobs | None" = None) -> Credential:
        from azexec import tokencmd
        from azexec.resources import DEFAULT_RESOURCE

        asked = resource or DEFAULT_RESOURCE
        if jobs is None:
            ran = tokencmd.run(self.command, self.timeout, asked, label=self.origin, mask_stderr=self.mask_stderr)
            try:
                credential = parse(decode(ran.output, self.origin), self.origin)
            except TokenSourceError:
                tokencmd.pass_on(ran.errors, ran.output.strip())
                raise
            tokencmd.pass_on(ran.errors, credential.token.reveal().encode() if credential.token else b"")
            return credential
        data, errors = tokencmd.run_detached(self.command, self.timeout, asked, label=self.origin, jobs=jobs)
        try:
            credential = parse(decode(data, self.origin), self.origin)
        except TokenSourceError:
            jobs.stderr(errors)
            raise
        # What it said on stderr goes on only now, with its own new token masked too (JOBS masks the others).
        token = credential.token.reveal().encode() if credential.token else b""
        jobs.stderr(errors.replace(token, REPLACEMENT) if token else errors)
        return credential


class EnvFile(_PathSource):
    """A dotenv file with the three AZURE_CLI_* values; when it holds the token, it is read again for a fresh one."""

    def read(self, resource: str | None = None, *, jobs: "Jobs | None" = None) -> Credential:
        """Take the three AZURE_CLI_* values, and nothing else.

        Values are literal: python-dotenv's ${VAR} interpolation would read
        azexec's own environment (a secret that COMMAND then inherits, or the very
        stale value azexec removes) and is quadratic in the number of keys.
        """
        import io

        from dotenv.parser import parse_stream

        origin = self.origin
        data, warnings = _read_path(self.path, origin)
        values: dict[str, str] = {}
        problems: list[str] = []
        bare: int | None = None
        # Parsed from memory: python-dotenv would silently read a missing file as empty.
        for binding in parse_stream(io.StringIO(decode(data, origin))):
            line = binding.original.line
            # A line with no "=" (a bare token pasted on its own line) is no error to python-dotenv: python-dotenv
            # reads it as a key without a value.
            if binding.key is not None and binding.value is None and looks_secret(binding.key):
                bare = bare or line
                problems.append(f"{origin}: line {line} is ignored: it {BARE_TOKEN}; {BARE_TOKEN_HINT}")
            elif binding.error or (binding.key is not None and binding.value is None):
                problems.append(f"{origin}: line {line} is not KEY=VALUE and is ignored")
            elif binding.key in ENV_FILE_KEYS:
                values[binding.key] = binding.value or ""

        def pick(key: str) -> Sourced | None:
            value = values.get(key, "")
            reference = re.search(r"\$\{([^}]*)\}", value)
            if reference:
                name = show(reference.group(1).partition(":-")[0])
                raise TokenSourceError(
                    f"{origin}: {key} refers to ${{{name}}}, but values in an env file are taken literally",
                    f"to take the token from a variable, use --token-env {name}"
                    if key == TOKEN_VAR
                    else "write the value",
                )
            return Sourced(value, origin) if value else None

        token = pick(TOKEN_VAR)
        return Credential(
            origin=origin,
            token=Secret(token.value, origin) if token else None,
            subscription=pick(SUBSCRIPTION_VAR),
            tenant=pick(TENANT_VAR),
            # Others reading the file matters only when it holds the secret.
            warnings=tuple(problems) + (warnings if token else ()),
            empty_token=token is None and TOKEN_VAR in values,
            bare_token_line=bare,
        )


def parse(text: str, origin: str) -> Credential:
    """Turn a source's text into a credential: a bare token or a JSON token document."""
    text = text.strip()
    if not text:
        raise TokenSourceError(f"{origin} is empty", "it should hold the access token")
    if text[0] not in "{[":
        return Credential(origin=origin, token=Secret(text, origin))

    return _parse_json(text, origin)


def _oauth_error(document: dict[str, Any], origin: str) -> TokenSourceError | None:
    """Return the error an OAuth error answer ({"error", "error_description"}) states, quoted; None if it is none."""
    error, description = document.get("error"), document.get("error_description")
    if not isinstance(error, str) or not error.strip():
        return None
    said = error.strip()[:MAX_QUOTED]
    if isinstance(description, str) and description.strip():
        first = description.strip().splitlines()[0]
        said += ": " + (first[:MAX_QUOTED] + "…" if len(first) > MAX_QUOTED else first)
    return TokenSourceError(
        f"{origin} holds an OAuth error instead of a token: {scrub(said)}",
        "fix what it says (an expired sign-in: sign in again), then run azexec again",
    )


def _parse_json(text: str, origin: str) -> Credential:
    """Take the token, subscription and tenant from a JSON token document."""
    import json

    from azexec.bounded import TooDeep, load_json

    try:
        document = load_json(text)
    except TooDeep:
        raise TokenSourceError(f"{origin} holds JSON nested too deeply", _KEYS_HINT) from None
    except ValueError as e:
        where = f" (line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
        raise TokenSourceError(f"{origin} starts like JSON but is not valid JSON{where}", _KEYS_HINT) from None
    if not isinstance(document, dict):
        raise TokenSourceError(f"{origin} holds JSON that is not an object", _KEYS_HINT)
    present = [k for k in _JSON_TOKEN_KEYS if document.get(k) not in (None, "")]
    key = present[0] if present else next((k for k in _JSON_TOKEN_KEYS if k in document), None)
    if key is None:
        missing = TokenSourceError(f"{origin} holds JSON without an access token", _KEYS_HINT)
        raise _oauth_error(document, origin) or missing
    if len(present) > 1 and document[present[0]] != document[present[1]]:
        raise TokenSourceError(
            f'{origin} holds JSON whose "{present[0]}" and "{present[1]}" differ',
            "keep one of them, so it is clear which token is meant",
        )

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
    return Credential(
        origin=origin,
        token=Secret(token.value, token.origin),
        subscription=field("subscription"),
        tenant=field("tenant"),
    )


def _read_path(path: str, origin: str) -> tuple[bytes, tuple[str, ...]]:
    """Read PATH (a file, a FIFO, /dev/fd/N) and say whether others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError) as e:
        raise _unopenable(path, origin, e) from None
    try:
        if os.isatty(fd):
            # A terminal (/dev/tty, /dev/stdin at a prompt): never with echo on.
            return _prompt_hidden(fd, origin), ()
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise TokenSourceError(f"{origin} is a directory", "name the file that holds the token")
        warnings: tuple[str, ...] = ()
        # Like ssh with private keys: pipes and devices are private by nature.
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o044:
            mode = stat.S_IMODE(info.st_mode)
            quoted = shell_quote(path)
            warnings = (f"{quoted} is readable by other users (mode {mode:04o}); run: chmod 600 {quoted}",)
        return read_fd(fd, origin), warnings
    finally:
        os.close(fd)


def _unopenable(path: str, origin: str, error: OSError | ValueError) -> TokenSourceError | MisplacedToken:
    """Say why PATH cannot be opened; a token where the path belongs is named as such."""
    if looks_like_token(path):
        return MisplacedToken(f"{origin} looks like a token, not a path", STDIN_HINT)
    if isinstance(error, FileNotFoundError):
        return TokenSourceError(f"{origin}: no such file", "check the path")
    if isinstance(error, PermissionError):
        return TokenSourceError(f"{origin}: permission denied", "check the file's owner and mode")
    reason = error.strerror if isinstance(error, OSError) else "not a valid path"
    return TokenSourceError(f"{origin}: {reason}", "check the path")


def decode(data: bytes, origin: str) -> str:
    """Decode UTF-8, dropping a byte-order mark that Windows editors add."""
    try:
        # removeprefix rather than the utf-8-sig codec: one import less at start-up.
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise TokenSourceError(f"{origin} is not UTF-8 text", "it should hold the access token") from None


#: Bytes a hidden prompt handles itself, since the terminal's line editing is off.
_ENTER = b"\r\n"
_ERASE = b"\x7f\x08"
_KILL_LINE = b"\x15"
_END = b"\x04"


def _edit(line: bytearray, chunk: bytes) -> bool:
    """Apply CHUNK's keys to LINE as a terminal would; return whether the input is complete.

    Enter ends a token. JSON (what az account get-access-token prints, pasted whole) goes on over
    several lines until it closes, or until Ctrl-D.
    """
    for byte in chunk:
        char = bytes((byte,))
        if char in _END and (not line or line.lstrip().startswith(b"{")):
            return True
        if char in _ENTER:
            if not line.lstrip().startswith(b"{") or _closed(line):
                return True
            line.append(ord("\n"))
            continue
        if char in _ERASE:
            del line[-1:]
        elif char in _KILL_LINE:
            line.clear()
        elif char not in _END:
            line.append(byte)
    return False


def _closed(text: bytearray) -> bool:
    """Tell whether TEXT is a whole JSON document (pasted JSON ends when its braces close)."""
    from azexec.bounded import load_json

    try:
        load_json(bytes(text))
    except ValueError:
        return False
    return True


def _prompt_hidden(fd: int, origin: str) -> bytes:
    """Prompt on terminal FD and read a line without echo, of any length.

    The terminal's line editing (canonical mode) is off: it cuts a line at
    4095 bytes, and Azure tokens of users in many groups are longer. Ctrl-C
    still interrupts (ISIG stays on); backspace and Ctrl-U are handled here.
    """
    import termios

    prompt = "Azure access token (input hidden): "
    try:
        tty = os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        tty = -1
    out = tty if tty >= 0 else 2
    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        return read_fd(fd, origin)
    new = [*old[:6], list(old[6])]
    new[3] = old[3] & ~(termios.ECHO | termios.ICANON)
    new[6][termios.VMIN], new[6][termios.VTIME] = 1, 0
    line = bytearray()
    limit = Limited(origin, "paste the token alone")
    try:
        # Echo off first: a token typed or pasted the moment the prompt shows must not be echoed.
        termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        os.write(out, prompt.encode())
        while (chunk := os.read(fd, 65536)) and not _edit(line, chunk):
            limit.check(len(line))
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)
        os.write(out, b"\n")
        if tty >= 0:
            os.close(tty)
    return bytes(line)
