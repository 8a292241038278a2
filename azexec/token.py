"""Check an access token: its format always, its JWT claims unless told not to.

The signature is never verified: az and Azure do that. Only what can make a
command fail later (expiry, tenant, audience) is read from the claims.
"""

# No `from __future__ import annotations`: its string annotations cost a compile per NamedTuple field at
# import, on the start-up path (docs/development.md, "One exception to the style").

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from azexec import ids, resources
from azexec.errors import TokenRejected
from azexec.redact import Secret, show

if TYPE_CHECKING:
    from types import ModuleType

    from jwt.types import Options

MAX_TOKEN_CHARS = 64 * 1024
#: How far in the future ``nbf`` may lie, for clocks that disagree a little.
CLOCK_SKEW_SECONDS = 300
#: Below this much validity left, warn (unless --min-validity says otherwise).
WARN_REMAINING_SECONDS = 300
#: Claim times are clamped to 0001-01-01 .. 9999-12-31 (UTC), which every clock call here represents.
MIN_TIME = -62135596800
MAX_TIME = 253402300799

#: How long a token that is not decoded (--no-verify) is taken to live: as long as Azure's usually do.
NO_VERIFY_LIFETIME = 3600

_NO_VERIFY_HINT = "if the token is opaque by design, pass --no-verify to skip the JWT checks"
_WHERE_FROM = "Azure issues no such token: check where it came from"


class Claims(NamedTuple):
    """What azexec reads from a token's payload."""

    expires_at: int
    not_before: int | None
    tenant: str | None
    audiences: tuple[str, ...]
    user: str | None
    app: str | None
    object_id: str | None
    identity_type: str | None
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    issuer: str | None
    #: A managed identity's Azure resource ID (xms_mirid).
    resource_id: str | None = None
    #: When it was issued (iat): with expires_at, how long it lives.
    issued_at: int | None = None


class Tenant(NamedTuple):
    """A tenant the token must be for, and who said so (e.g. ``--tenant``, ``the held token``)."""

    value: str
    origin: str


class Accepted(NamedTuple):
    """A token that passed the policy."""

    token: Secret
    #: None when the token was not decoded (--no-verify).
    claims: Claims | None
    expires_at: int
    warnings: tuple[str, ...]
    #: That it expires soon: moot when the identity server will replace it.
    expiring: tuple[str, ...] = ()


class TokenPolicy(NamedTuple):
    """Whether a token is acceptable: one policy for the first token and every later one."""

    verify: bool = True
    #: --audience: the audiences the first token must have (a later one must serve what it was asked for).
    audiences: tuple[str, ...] = ()
    #: --min-validity: the least time a token must have left.
    min_validity: float | None = None
    #: Tenant GUIDs the token must be for; a domain cannot be compared with a tid, so it is not here.
    tenants: tuple[Tenant, ...] = ()
    #: Refuse a token without a tid claim (every token after one that had it).
    require_tenant: bool = False
    clock: Callable[[], float] = time.time
    #: Who reads the token: az or a tool from the environment ("env"), the SDKs through the identity server
    #: ("server"), az logged in through it ("az"); the wrong-audience warning says what will fail.
    mode: str = "env"

    def accept(self, token: Secret, *, resource: str | None = None) -> Accepted:
        """Check TOKEN (obtained for RESOURCE, or the first token when None); return it with its claims.

        Raise TokenRejected saying what is wrong and what to do.
        """
        check_format(token.reveal(), token.origin)
        now = self.clock()
        if not self.verify:
            return Accepted(token, None, int(now) + NO_VERIFY_LIFETIME, ())
        claims = decode(token.reveal(), token.origin, self.audiences if resource is None else ())
        expiring = check_validity(claims, self.min_validity, now)
        warnings: tuple[str, ...] = ()
        if resource is None:
            warnings = audience_warnings(claims, self.audiences, self.mode)
        elif not resources.serves(claims.audiences, resource):
            found = ", ".join(show(a) for a in claims.audiences) or "none"
            raise TokenRejected(
                f"the access token from {token.origin} for {show(resource)} is for audience {found}",
                "check that the command puts {resource} where the resource belongs",
            )
        if claims.tenant is None and self.require_tenant and self.tenants:
            raise TokenRejected(
                f"the access token from {token.origin} names no tenant (tid claim), "
                f"so it cannot be shown to be for tenant {self.tenants[0].value} ({self.tenants[0].origin})",
                "check where the token command gets its tokens",
            )
        if claims.tenant is not None:
            for tenant in self.tenants:
                if tenant.value.lower() != claims.tenant.lower():
                    wrong = f"the tenant {show(tenant.value)} from {tenant.origin}"
                    raise TokenRejected(
                        f"{wrong} is not the token's tenant {claims.tenant}",
                        "use a token issued by that tenant, or fix the tenant",
                    )
        return Accepted(token, claims, claims.expires_at, warnings, expiring)


def check_format(token: str, origin: str) -> None:
    """Refuse what no HTTP header can carry safely; runs even with --no-verify."""
    if not token:
        raise TokenRejected(f"the access token from {origin} is empty", "get a fresh one")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected(
            f"the access token from {origin} is longer than 64 KiB ({len(token)} characters)",
            "point the source at the token alone",
        )
    if token[:7].lower() == "bearer ":
        raise TokenRejected(f"the access token from {origin} starts with 'Bearer '", "remove that prefix")
    for index, char in enumerate(token):
        if not "!" <= char <= "~":
            # Whitespace here would become header injection in the child's requests.
            kind = "whitespace or a control character" if char.isspace() or ord(char) < 32 else "a non-ASCII character"
            raise TokenRejected(
                f"the access token from {origin} contains {kind} (at character {index + 1} of {len(token)})",
                "a token is printable ASCII without spaces: check how the source was written",
            )


def decode(token: str, origin: str, audiences: Sequence[str] = ()) -> Claims:
    """Decode TOKEN without verifying its signature, checking exp (and aud when asked)."""
    jwt = _pyjwt()

    wanted = _with_and_without_slash(audiences)
    segments = token.count(".") + 1
    if segments == 5:
        raise TokenRejected(f"the access token from {origin} is encrypted (JWE) and cannot be read", _NO_VERIFY_HINT)
    options: Options = {
        # pyjwt turns every claim check off with the signature check unless asked;
        # expiry is checked in check_validity, against the policy's clock.
        "verify_signature": False,
        "verify_exp": False,
        "verify_aud": bool(wanted),
        # nbf needs a skew allowance but exp must have none, and pyjwt has one
        # leeway for both: nbf is checked in check_validity instead.
        "verify_nbf": False,
        "verify_iat": False,
        "require": ["exp"],
    }
    try:
        payload = jwt.decode(token, options=options, audience=wanted or None)
    except jwt.MissingRequiredClaimError:
        raise TokenRejected(
            f"the access token from {origin} has no expiry (exp claim), so it is not an Azure access token",
            _NO_VERIFY_HINT,
        ) from None
    except jwt.InvalidAudienceError:
        found = ", ".join(show(a) for a in _audiences(_unverified_payload(token))) or "none"
        asked = ", ".join(dict.fromkeys(show(a) for a in audiences))
        first = audiences[0]
        hint = (
            f"request one with: az account get-access-token --resource {first} -o json"
            if first == show(first)
            else "check the --audience value: it looks like a token, not an audience"
        )
        raise TokenRejected(f"the access token is for audience {found}, not {asked}", hint) from None
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError, RecursionError):
        raise _unreadable(token, origin) from None
    return _claims(payload, origin)


def _unreadable(token: str, origin: str) -> TokenRejected:
    """Say why pyjwt could not read TOKEN: damaged on its way (quotes, cut short), opaque, or odd claims.

    Only a token that is not a JWT at all is pointed to --no-verify: a damaged one is pointed to its source.
    """
    again = "copy the whole token again from its source"
    what = f"the access token from {origin}"
    unquoted = token.strip("'\"")
    if unquoted != token and unquoted.startswith("eyJ"):
        return TokenRejected(f"{what} is wrapped in quotes", "remove them: the token starts at eyJ")
    if not token.startswith("eyJ"):
        return TokenRejected(f"{what} is not a JWT (an Azure access token starts with eyJ)", _NO_VERIFY_HINT)
    parts = token.count(".") + 1
    if parts < 3:
        return TokenRejected(f"{what} has {parts} of a JWT's 3 parts: it looks cut short", again)
    try:
        _unverified_payload(token)
    except Exception:  # any failure to read it means the same to the user
        return TokenRejected(
            f"{what} starts like a JWT but its parts do not decode: it looks cut short or damaged", again
        )
    return TokenRejected(f"{what} has malformed claims (exp, nbf or aud of the wrong type)", again)


def expired(expires_at: float, now: float) -> TokenRejected:
    """Say that the token expired, how long ago and when."""
    return TokenRejected(
        f"the access token expired {describe_span(now - expires_at)} ago ({format_utc(expires_at)})", "get a fresh one"
    )


def check_validity(claims: Claims, min_validity: float | None, now: float) -> tuple[str, ...]:
    """Fail when the token is not yet valid or expires too soon; return warnings."""
    if claims.not_before is not None and claims.not_before > now + CLOCK_SKEW_SECONDS:
        raise TokenRejected(
            f"the access token is not valid until {format_utc(claims.not_before)} "
            f"(in {describe_span(claims.not_before - now)}, beyond the {CLOCK_SKEW_SECONDS // 60}-minute "
            "clock-skew allowance)",
            "check this machine's clock",
        )
    remaining = claims.expires_at - now
    if remaining <= 0:
        raise expired(claims.expires_at, now)
    if min_validity is not None:
        if remaining < min_validity:
            raise TokenRejected(
                f"the access token expires in {describe_span(remaining)} ({format_utc(claims.expires_at)}), "
                f"less than --min-validity {describe_span(min_validity)}",
                "get a fresh one",
            )
        return ()
    if remaining < WARN_REMAINING_SECONDS:
        return (
            f"the access token expires in {describe_span(remaining)} ({format_utc(claims.expires_at)}); "
            "long commands may fail part-way",
        )
    return ()


#: What fails with a token that is not for Resource Manager, by mode (TokenPolicy.mode).
WRONG_AUDIENCE = {
    "env": "so most az commands will fail",
    "server": "so the identity server serves that audience alone, and refuses the SDKs Resource Manager",
    "az": "so az cannot log in with it",
}
#: The way out where a server serves the token: a token command run for each resource asked.
PER_RESOURCE = (
    "put {resource} in --token-cmd to serve each resource asked for"
    ' (--token-cmd "az account get-access-token --resource {resource} -o json"),'
    " or pass --audience to accept it quietly"
)


def audience_warnings(claims: Claims, audiences: Sequence[str], mode: str = "env") -> tuple[str, ...]:
    """Warn when the audience is not ARM and no --audience said what to expect: what will fail in MODE, and why."""
    if audiences or not claims.audiences:
        return ()
    if any(resources.is_arm(a) for a in claims.audiences):
        return ()
    found = ", ".join(show(a) for a in claims.audiences)
    way_out = PER_RESOURCE if mode != "env" else "pass --audience to accept it quietly (or to make this an error)"
    return (f"the access token is for {found}, not Azure Resource Manager, {WRONG_AUDIENCE[mode]}; {way_out}",)


def describe_span(seconds: float) -> str:
    """Say a duration the way a person would: '12 minutes', '3 hours 5 minutes'."""
    if not math.isfinite(seconds):
        return "forever"
    seconds = int(abs(seconds))
    if seconds < 120:
        return _plural(seconds, "second")
    minutes = seconds // 60
    if minutes < 120:
        return _plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")
    days = hours // 24
    if days < 730:
        return _plural(days, "day")
    return _plural(days // 365, "year")


def format_utc(timestamp: float) -> str:
    """Format an epoch time as '2026-11-25 12:00:03 UTC'."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return f"epoch {timestamp:.0f}"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _with_and_without_slash(audiences: Sequence[str]) -> list[str]:
    """Accept every spelling of each audience: a trailing slash or not, and each name of Resource Manager."""
    return sorted({spelling for audience in audiences for spelling in resources.spellings(audience)})


def _unverified_payload(token: str) -> Mapping[str, Any]:
    jwt = _pyjwt()

    payload: Mapping[str, Any] = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    return payload


def _audiences(payload: Mapping[str, Any]) -> tuple[str, ...]:
    aud = payload.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


def _text(payload: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _number(payload: Mapping[str, Any], name: str, origin: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenRejected(f"the access token from {origin} has a non-numeric {name} claim", _WHERE_FROM)
    if isinstance(value, float) and not math.isfinite(value):
        raise TokenRejected(f"the access token from {origin} has an {name} claim that is not a time", _WHERE_FROM)
    return _clamp(value)


def _clamp(value: object) -> int:
    """Return a claim time as an int within MIN_TIME..MAX_TIME (0 for what is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN
        return 0
    return int(min(max(value, MIN_TIME), MAX_TIME))


def _claims(payload: Mapping[str, Any], origin: str) -> Claims:
    expires_at = _number(payload, "exp", origin)
    assert expires_at is not None  # pyjwt required it
    roles = payload.get("roles")
    scopes = payload.get("scp")
    tenant = _text(payload, "tid")
    if tenant is not None and not ids.is_guid(tenant):
        raise TokenRejected(
            f"the access token from {origin} has a tenant (tid claim) that is not a GUID: {show(tenant)}",
            "an Azure access token names its tenant by ID; check where the token came from",
        )
    return Claims(
        expires_at=expires_at,
        not_before=_number(payload, "nbf", origin),
        tenant=tenant,
        audiences=_audiences(payload),
        user=_text(payload, "upn", "unique_name", "preferred_username", "email"),
        app=_text(payload, "appid", "azp"),
        object_id=_text(payload, "oid"),
        identity_type=_text(payload, "idtyp"),
        roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
        scopes=tuple(scopes.split()) if isinstance(scopes, str) else (),
        issuer=_text(payload, "iss"),
        resource_id=_text(payload, "xms_mirid"),
        issued_at=_number(payload, "iat", origin),
    )


def _pyjwt() -> "ModuleType":
    """Import pyjwt without the cryptography package, which azexec never needs: it verifies no signature.

    pyjwt imports cryptography whenever it can, and a venv that also holds
    azure-identity or azure-cli has it: that doubled the cost of `import jwt`
    (about 40 ms, most of azexec's start-up). A None in sys.modules is the
    import system's own way to make an import fail; it is taken out again at once.
    """
    if "jwt" in sys.modules or "cryptography" in sys.modules:  # loaded already: nothing left to save
        import jwt

        return jwt
    sys.modules["cryptography"] = None  # type: ignore[assignment]  # see above: the documented blocker
    try:
        import jwt
    finally:
        del sys.modules["cryptography"]
    return jwt
