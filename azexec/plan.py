"""Resolve options and sources into what the child gets, checking everything first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from azexec import ids, sources, token
from azexec.errors import TokenRejected, TokenSourceError, UsageError
from azexec.redact import show
from azexec.sources import Credential, Sourced
from azexec.token import Claims


class Request(NamedTuple):
    """What the user asked for, as parsed from the command line; every field is the CLI's to give."""

    token_stdin: bool
    token_file: str | None
    token_cmd: str | None
    token_cmd_timeout: float
    token_env: str | None
    env_files: tuple[str, ...]
    subscription: str | None
    tenant: str | None
    min_validity: float | None
    audiences: tuple[str, ...]
    verify: bool
    #: Options whose value came from an AZEXEC_* variable, by parameter name: messages name the variable.
    from_environment: frozenset[str]

    def label(self, name: str) -> str:
        """Name option NAME (e.g. token_env) as the user gave it: --token-env or AZEXEC_TOKEN_ENV."""
        if name in self.from_environment:
            return f"AZEXEC_{name.upper()}"
        return "--" + name.replace("_", "-")


class Plan(NamedTuple):
    """The checked values for the child, each with its origin."""

    token: Sourced
    subscription: Sourced | None
    tenant: Sourced | None
    claims: Claims | None
    warnings: tuple[str, ...]
    #: Variables removed from the child's environment besides the three.
    removed: tuple[str, ...]

    def sourced(self) -> dict[str, Sourced | None]:
        """Return the three variables with their origins; None means 'remove from the child'."""
        return {
            sources.TOKEN_VAR: self.token,
            sources.SUBSCRIPTION_VAR: self.subscription,
            sources.TENANT_VAR: self.tenant,
        }

    def variables(self) -> dict[str, str | None]:
        """Return the three variables' values; None means 'remove from the child'."""
        return {name: value.value if value else None for name, value in self.sourced().items()}


def token_options(request: Request) -> list[str]:
    """Name the --token-* options given, in a fixed order."""
    given = {
        "token_stdin": request.token_stdin,
        "token_file": request.token_file is not None,
        "token_cmd": request.token_cmd is not None,
        "token_env": request.token_env is not None,
    }
    return [request.label(name) for name, present in given.items() if present]


def prepare(request: Request, environ: Mapping[str, str], now: float | None = None) -> Plan:
    """Read every source, resolve each value by precedence, and check the token."""
    return resolve(request, read(request, environ), now)


def read(request: Request, environ: Mapping[str, str]) -> list[Credential]:
    """Read the sources the request names; return them as layers, the one that wins first.

    Precedence: options > the token source's JSON > env files (the last file first).
    """
    options = token_options(request)
    if len(options) > 1:
        raise UsageError(f"both {options[0]} and {options[1]} supply an access token", "use exactly one source")
    env_files = [sources.from_env_file(path) for path in request.env_files]
    with_token = [c for c in env_files if c.token is not None]
    if options and with_token:
        raise UsageError(
            f"both {options[0]} and {with_token[-1].origin} supply an access token",
            f"remove {sources.TOKEN_VAR} from the file, or drop {options[0]}",
        )
    if not options and not with_token:
        empty = [c for c in env_files if c.empty_token]
        if empty:
            raise TokenSourceError(
                f"{empty[-1].origin}: {sources.TOKEN_VAR} is empty", "it should hold the access token"
            )
        raise UsageError(
            "no access token source",
            "use --token-stdin, --token-file, --token-cmd, --token-env or an --env-file that holds "
            f"{sources.TOKEN_VAR}",
        )
    given = Credential(
        origin="options",
        subscription=Sourced(request.subscription, request.label("subscription")) if request.subscription else None,
        tenant=Sourced(request.tenant, request.label("tenant")) if request.tenant else None,
    )
    primary = [_read_primary(request, environ)] if options else []
    return [given, *primary, *reversed(env_files)]


def resolve(request: Request, layers: list[Credential], now: float | None = None) -> Plan:
    """Take each value from the first layer that has it, and check them all."""
    secret = _first(c.token for c in layers)
    assert secret is not None  # read() made sure one layer has it
    warnings = [w for c in reversed(layers) for w in c.warnings]

    token.check_format(secret.value, secret.origin)
    claims = None
    if request.verify:
        claims = token.decode(secret.value, secret.origin, request.audiences)
        warnings += token.check_validity(claims, request.min_validity, now)
        warnings += token.audience_warnings(claims, request.audiences)

    subscription = _first(c.subscription for c in layers)
    if subscription is not None and not ids.is_guid(subscription.value):
        raise TokenSourceError(
            f"the subscription from {subscription.origin} is not a GUID", "use the subscription ID, not its name"
        )
    tenant = _first(c.tenant for c in layers)
    if tenant is not None and not ids.is_tenant(tenant.value):
        raise TokenSourceError(f"the tenant from {tenant.origin} is neither a GUID nor a domain", "use the tenant ID")
    if claims is not None and claims.tenant:
        _check_tenants(layers, claims.tenant)
        if tenant is None:
            tenant = Sourced(claims.tenant, "the token's tid claim")

    return Plan(
        token=secret,
        subscription=subscription,
        tenant=tenant,
        claims=claims,
        warnings=tuple(warnings),
        removed=(request.token_env,) if request.token_env else (),
    )


def _read_primary(request: Request, environ: Mapping[str, str]) -> Credential:
    if request.token_stdin:
        return sources.from_stdin()
    if request.token_file is not None:
        return sources.from_file(request.token_file)
    if request.token_cmd is not None:
        return sources.from_command(request.token_cmd, request.token_cmd_timeout)
    assert request.token_env is not None
    return sources.from_env(request.token_env, environ)


def _first(values: Iterable[Sourced | None]) -> Sourced | None:
    """Return the first value present."""
    return next((value for value in values if value is not None), None)


def _check_tenants(layers: list[Credential], tid: str) -> None:
    """Refuse any tenant GUID, from any source, that is not the token's own."""
    for layer in layers:
        tenant = layer.tenant
        if tenant is not None and ids.is_guid(tenant.value) and tenant.value.lower() != tid.lower():
            raise TokenRejected(
                f"the tenant {show(tenant.value)} from {tenant.origin} is not the token's tenant {tid}",
                "use a token issued by that tenant, or fix the tenant",
            )
