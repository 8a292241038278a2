"""Make any value safe to quote back: secrets become fingerprints, control characters escapes.

Every value azexec prints that came from the user or a token goes through
``show`` (one value) or ``scrub`` (a whole message, e.g. one of click's). The
commonest misuse of a tool like this is a value where a name belongs
(``--token-env "$ARM_TOKEN"``), so a value that merely *looks* like a secret
is never echoed.
"""

from __future__ import annotations

import re

#: A JWT (or JWE): base64url segments joined by dots, the first of which is JSON ("eyJ").
_JWT = r"eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){2,4}"
#: Three or more long base64url segments joined by dots: a token whatever its header.
_DOTTED = r"[A-Za-z0-9_-]{16,}(?:\.[A-Za-z0-9_-]{16,}){2,4}"
#: A run of secret-like characters in free text (click's messages): a key, a password, a token.
_WORD = r"[A-Za-z0-9_\-+/=.~]{32,}"

#: What a masked token becomes (--mask, a token command's stderr).
REPLACEMENT = b"***"
#: From this length on a value without spaces is taken for a secret, whatever it holds.
LONG_SECRET = 100
#: From this length on a value with upper case, lower case and digits, and no path separator, is too.
MIXED_SECRET = 32


class Secret:
    """A token, and where it came from; printed, formatted or repr'd it shows only its fingerprint.

    The value comes out only through reveal(), at the few places that hand it
    on (COMMAND's environment, an HTTP answer, the mask), so a failing test, a
    debugger or a future log line cannot print it by accident.
    """

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        """Return the token itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({fingerprint(self._value)} from {escape(self.origin)})"

    def __str__(self) -> str:
        return fingerprint(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def fingerprint(secret: str) -> str:
    """Identify SECRET without revealing it: its length and a short sha256 prefix."""
    import hashlib

    digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"<redacted: {len(secret)} chars, sha256 {digest}>"


def looks_secret(value: str) -> bool:
    """Tell whether VALUE could be a token or a password rather than a name, path or ID (then it is not printed)."""
    if looks_like_token(value):
        return True
    return len(value) >= LONG_SECRET and not any(char.isspace() for char in value)


def looks_like_token(value: str) -> bool:
    """Tell whether VALUE is shaped like a token (a JWT, dotted, or long mixed letters and digits): stricter than
    looks_secret, which also takes any long word for one; a token typed where a value belongs is a usage error."""
    if re.search(_JWT, value) or re.search(_DOTTED, value):
        return True
    if any(char.isspace() for char in value):
        return False
    mixed = any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)
    return len(value) >= MIXED_SECRET and mixed and "/" not in value


#: Where a token pasted in the wrong place should go instead.
STDIN_HINT = "pipe it to --token-stdin instead (printf '%s' \"$TOKEN\" | azexec --token-stdin -- …)"


def escape(text: str) -> str:
    """Escape control, format and unpaired surrogate characters, so a value cannot drive a terminal."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif (code := ord(char)) < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def show(value: str) -> str:
    """Return VALUE as azexec may print it: its fingerprint if it looks secret, else escaped."""
    return fingerprint(value) if looks_secret(value) else escape(value)


def scrub(message: str, known: tuple[str, ...] = ()) -> str:
    """Redact a whole MESSAGE: every KNOWN secret, then anything in it shaped like one."""
    for value in sorted((k for k in known if k and looks_secret(k)), key=len, reverse=True):
        for spelling in {value, repr(value)[1:-1]}:
            message = message.replace(spelling, fingerprint(value))
    message = re.sub(f"{_JWT}|{_DOTTED}", lambda m: fingerprint(m.group()), message)
    message = re.sub(_WORD, lambda m: show(m.group()) if looks_secret(m.group()) else m.group(), message)
    return escape_lines(message)


def mask_bytes(data: bytes, known: tuple[bytes, ...] = ()) -> bytes:
    """Return DATA with every KNOWN secret, then anything in it shaped like a token, replaced by REPLACEMENT."""
    for value in sorted(filter(None, known), key=len, reverse=True):
        data = data.replace(value, REPLACEMENT)
    return re.sub(f"{_JWT}|{_DOTTED}".encode(), REPLACEMENT, data)


def escape_lines(message: str) -> str:
    """Escape MESSAGE but keep its line breaks (click's usage text has several lines)."""
    return "\n".join(escape(line) for line in message.split("\n"))


def shell_quote(path: str) -> str:
    """Quote PATH for a POSIX shell so a hint can be pasted, even when it is not UTF-8."""
    import shlex

    if path.isprintable():
        return shlex.quote(path)
    # Bytes that are not UTF-8 arrive as surrogate escapes; control characters
    # are not printable: both need bash's $'…' quoting to be pasted.
    data = path.encode("utf-8", "surrogateescape")
    body = "".join(chr(byte) if 0x20 <= byte < 0x7F and chr(byte) not in "'\\" else f"\\x{byte:02x}" for byte in data)
    return f"$'{body}'"
