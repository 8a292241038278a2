"""Choose the token source and the token policy from the options, read, and accept: the Plan."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from azexec import ids, resources, sources
from azexec.errors import TokenSourceError, UsageError
from azexec.redact import Secret
from azexec.sources import Credential, Sourced, TokenSource
from azexec.token import Claims, Tenant, TokenPolicy

#: Parameters whose option is spelled otherwise (click's name for a repeatable option is plural).
_OPTION_NAMES = {"env_files": "env_file", "audiences": "audience"}


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
    #: --az-login: the token must be for Azure Resource Manager (az login asks for nothing else).
    require_arm: bool
    #: --mask: a token command's stderr in a log is masked too.
    mask: bool
    #: Options whose value came from an AZEXEC_* variable, by parameter name: messages name the variable.
    from_environment: frozenset[str]

    def label(self, name: str) -> str:
        """Name parameter NAME (e.g. token_env) as the user gave it: --token-env or AZEXEC_TOKEN_ENV."""
        option = _OPTION_NAMES.get(name, name)
        if name in self.from_environment:
            return f"AZEXEC_{option.upper()}"
        return "--" + option.replace("_", "-")


class Plan(NamedTuple):
    """The checked values for the child, each with its origin, and how to get and check fresh tokens."""

    token: Secret
    subscription: Sourced | None
    tenant: Sourced | None
    #: None when the token was not decoded (--no-verify).
    claims: Claims | None
    expires_at: int
    warnings: tuple[str, ...]
    #: That the token expires soon (a warning moot when the identity server will replace it).
    expiring: tuple[str, ...]
    #: Variables removed from the child's environment besides the three.
    removed: tuple[str, ...]
    #: Where the token came from: read again for a fresh one.
    source: TokenSource
    #: What the first token passed.
    policy: TokenPolicy

    def variables(self) -> dict[str, str | None]:
        """Return the three variables' values; None means 'remove from the child'."""
        return {
            sources.TOKEN_VAR: self.token.reveal(),
            sources.SUBSCRIPTION_VAR: self.subscription.value if self.subscription else None,
            sources.TENANT_VAR: self.tenant.value if self.tenant else None,
        }

    def later_policy(self) -> TokenPolicy:
        """Return the policy for every token after the first: the same checks, and the first one's tenant."""
        if self.claims is None or self.claims.tenant is None:
            return self.policy
        held = Tenant(self.claims.tenant, "the token azexec holds")
        return self.policy._replace(tenants=(held,), require_tenant=True)


SourceFactory = Callable[[str, Request, Mapping[str, str]], TokenSource]


def _file(path: str, request: Request, environ: Mapping[str, str]) -> TokenSource:
    label = request.label("token_file")
    return sources.Stdin(f"{label} -") if path == "-" else sources.File(path, label=label)


#: The token sources, by the parameter that names each. A new source is one class in
#: sources.py, one option in cli.py and one entry here.
SOURCES: dict[str, SourceFactory] = {
    "token_stdin": lambda _, request, environ: sources.Stdin(request.label("token_stdin")),
    "token_file": _file,
    "token_cmd": lambda command, request, environ: sources.Command(
        command, timeout=request.token_cmd_timeout, label=request.label("token_cmd"), mask_stderr=request.mask
    ),
    "token_env": lambda name, request, environ: sources.Variable(name, environ, label=request.label("token_env")),
}


def given_sources(request: Request) -> dict[str, str]:
    """Return the token-source options given, by parameter name, with their values ("-" for a flag)."""
    values = request._asdict()
    given = {name: "-" if values[name] is True else values[name] for name in SOURCES}
    return {name: value for name, value in given.items() if value not in (None, False)}


def prepare(request: Request, environ: Mapping[str, str], clock: Callable[[], float] = time.time) -> Plan:
    """Choose the source, read every layer, resolve each value by precedence, and accept the token.

    Precedence: options > the token source's JSON > env files (the last file first).
    """
    given = given_sources(request)
    typed = {name: value for name, value in given.items() if name not in request.from_environment}
    # An option typed on the command line wins over a source set by an AZEXEC_* variable.
    given = typed or given
    if len(given) > 1:
        first, second = (request.label(name) for name in list(given)[:2])
        raise UsageError(f"both {first} and {second} supply an access token", "use exactly one source")
    env_files = [sources.EnvFile(path, label=request.label("env_files")) for path in request.env_files]
    read = [env_file.read() for env_file in env_files]
    if typed and "env_files" in request.from_environment:
        # Env files from AZEXEC_ENV_FILE still give IDs; their token yields to the option typed.
        read = [c._replace(token=None) for c in read]
    holding = [(env_file, c) for env_file, c in zip(env_files, read, strict=True) if c.token is not None]
    if given and holding:
        option = request.label(next(iter(given)))
        raise UsageError(
            f"both {option} and {holding[-1][1].origin} supply an access token",
            f"remove {sources.TOKEN_VAR} from the file, or drop {option}",
        )
    if not given and not holding:
        empty = [c for c in read if c.empty_token]
        if empty:
            raise TokenSourceError(
                f"{empty[-1].origin}: {sources.TOKEN_VAR} is empty", "it should hold the access token"
            )
        raise UsageError(
            "no access token source",
            "use --token-stdin, --token-file, --token-cmd, --token-env or an --env-file that holds "
            f"{sources.TOKEN_VAR}",
        )
    options = Credential(
        origin="options",
        subscription=Sourced(request.subscription, request.label("subscription")) if request.subscription else None,
        tenant=Sourced(request.tenant, request.label("tenant")) if request.tenant else None,
    )
    if given:
        name, value = next(iter(given.items()))
        source = SOURCES[name](value, request, environ)
        # With {resource}, the first token is for the audience the user requires (default: ARM).
        layers = [options, source.read(request.audiences[0] if request.audiences else None), *reversed(read)]
    else:
        source = holding[-1][0]
        layers = [options, *reversed(read)]
    return resolve(request, layers, source, clock)


def resolve(
    request: Request, layers: list[Credential], source: TokenSource, clock: Callable[[], float] = time.time
) -> Plan:
    """Take each value from the first layer that has it, check them all, and accept the token."""
    secret = next(c.token for c in layers if c.token is not None)
    warnings = [w for c in reversed(layers) for w in c.warnings]

    subscription = _first(c.subscription for c in layers)
    if subscription is not None and not ids.is_guid(subscription.value):
        raise TokenSourceError(
            f"the subscription from {subscription.origin} is not a GUID", "use the subscription ID, not its name"
        )
    tenant = _first(c.tenant for c in layers)
    if tenant is not None and not ids.is_tenant(tenant.value):
        raise TokenSourceError(f"the tenant from {tenant.origin} is neither a GUID nor a domain", "use the tenant ID")

    policy = TokenPolicy(
        verify=request.verify,
        audiences=request.audiences or ((resources.DEFAULT_RESOURCE,) if request.require_arm else ()),
        min_validity=request.min_validity,
        # Every tenant GUID given, from any layer, must be the token's own.
        tenants=tuple(Tenant(t.value, t.origin) for c in layers if (t := c.tenant) and ids.is_guid(t.value)),
        clock=clock,
    )
    accepted = policy.accept(secret)
    claims = accepted.claims
    if claims is not None and claims.tenant and tenant is None:
        tenant = Sourced(claims.tenant, "the token's tid claim")

    return Plan(
        token=secret,
        subscription=subscription,
        tenant=tenant,
        claims=claims,
        expires_at=accepted.expires_at,
        warnings=(*warnings, *accepted.warnings),
        expiring=accepted.expiring,
        removed=(request.token_env,) if request.token_env else (),
        source=source,
        policy=policy,
    )


def _first(values: Iterable[Sourced | None]) -> Sourced | None:
    """Return the first value present."""
    return next((value for value in values if value is not None), None)
