"""Choose the token source and the token policy from the options, read, and accept: the Plan."""

# No `from __future__ import annotations`: its string annotations cost a compile per NamedTuple field at
# import, on the start-up path (docs/development.md, "One exception to the style").

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from azexec import ids, resources, sources
from azexec.errors import MisplacedToken, TokenSourceError, UsageError
from azexec.redact import Secret
from azexec.sources import Credential, Sourced, TokenSource
from azexec.token import Claims, Tenant, TokenPolicy

#: Parameters whose option is spelled otherwise (click's name for a repeatable option is plural).
_OPTION_NAMES = {"env_files": "env_file", "audiences": "audience"}
#: What each option taking text holds, for the line that says a token was typed there instead.
_VALUE_KINDS = {
    "token_file": "a path",
    "token_env": "a variable name",
    "token_cmd": "a command",
    "env_files": "a path",
    "audiences": "an audience",
}


class Request(NamedTuple):
    """What the user asked for: one field per option, named as click names its parameter, built once from them.

    Every conflict between options is checked in one place, check(); the token
    and the files it names are checked later, by prepare().
    """

    token_stdin: bool = False
    token_file: str | None = None
    token_cmd: str | None = None
    token_cmd_timeout: float = 60.0
    token_env: str | None = None
    env_files: tuple[str, ...] = ()
    subscription: str | None = None
    tenant: str | None = None
    min_validity: float | None = None
    audiences: tuple[str, ...] = ()
    no_verify: bool = False
    #: --no-exec: stay as COMMAND's parent even with nothing else to do.
    no_exec: bool = False
    #: --mask: replace every secret handed out in COMMAND's output (and token commands' stderr in a log).
    mask: bool = False
    #: --identity-server: serve the token through a local managed-identity endpoint.
    identity_server: bool = False
    #: --listen: the identity server's address beyond loopback (docker, podman, or an IP), or None: 127.0.0.1.
    listen: str | None = None
    #: --advertise: the host name its clients are given, or None: the default for --listen's address.
    advertise: str | None = None
    #: --az-login: log today's az in through the identity server, in a private directory.
    az_login: bool = False
    dry_run: bool = False
    as_json: bool = False
    quiet: bool = False
    #: COMMAND and its arguments, as given (empty: the user's shell, at a terminal).
    command: tuple[str, ...] = ()
    #: Options whose value came from an AZEXEC_* variable, by parameter name: messages name the variable.
    from_environment: frozenset[str] = frozenset()

    @classmethod
    def from_params(cls, params: Mapping[str, Any], from_environment: frozenset[str] = frozenset()) -> "Request":
        """Build the request from click's parameters, and check it."""
        return cls(**params, from_environment=from_environment).check()

    def check(self) -> "Request":
        """Refuse options that contradict each other (UsageError); return the request with every option set by
        an AZEXEC_* variable that cannot apply here dropped (one set for a whole shell must not break a run)."""
        request = self
        request._no_misplaced_token()
        given = given_sources(request)
        typed = [name for name in given if name not in request.from_environment]
        if len(typed or given) > 1:
            first, second = (request.label(name) for name in (typed or list(given))[:2])
            raise UsageError(f"both {first} and {second} supply an access token", "use exactly one source")
        if request.as_json and not request.dry_run:
            if "as_json" not in request.from_environment:
                raise UsageError("--json goes with --dry-run")
            request = request._replace(as_json=False)
        return request._listener()

    def _no_misplaced_token(self) -> None:
        """Refuse a token typed where a value of another kind belongs, naming where (MisplacedToken, exit 2)."""
        from azexec.redact import STDIN_HINT, looks_like_token, show

        for name, kind in _VALUE_KINDS.items():
            value = getattr(self, name)
            for text in value if isinstance(value, tuple) else (value,):
                first = text.split(None, 1)[0] if isinstance(text, str) and text.strip() else ""
                if looks_like_token(first):
                    raise MisplacedToken(f"{self.label(name)} {show(first)} looks like a token, not {kind}", STDIN_HINT)
        if self.command and looks_like_token(self.command[0]):
            raise MisplacedToken(
                f"COMMAND {show(self.command[0])} looks like a token, not a command",
                f"a token goes to a --token-* source, COMMAND after --; {STDIN_HINT}",
            )

    def _listener(self) -> "Request":
        """Check --listen and --advertise; an AZEXEC_LISTEN set for a shell applies where it can (--identity-server
        without --az-login) and is dropped elsewhere: 127.0.0.1 is the safe side."""
        typed = {name for name in ("listen", "advertise") if name not in self.from_environment}
        if self.listen is not None and "listen" in typed and not self.identity_server:
            raise UsageError("--listen goes with --identity-server")
        if self.listen is not None and "listen" in typed and self.az_login:
            raise UsageError(
                "--az-login logs this machine's az in through 127.0.0.1, so it cannot go with --listen; "
                "in a container, run az login --identity against the same endpoint"
            )
        listen = self.listen if self.identity_server and not self.az_login else None
        if self.advertise is not None and listen is None and "advertise" in typed:
            raise UsageError("--advertise goes with --listen")
        return self._replace(listen=listen, advertise=self.advertise if listen is not None else None)

    @property
    def verify(self) -> bool:
        """Whether the token is decoded and its claims checked (not --no-verify)."""
        return not self.no_verify

    @property
    def require_arm(self) -> bool:
        """Whether the token must be for Azure Resource Manager: az login asks for nothing else."""
        return self.az_login

    def serving(self) -> bool:
        """Tell whether the identity server runs (--identity-server, or --az-login through it)."""
        return self.identity_server or self.az_login

    def resident(self) -> bool:
        """Tell whether azexec stays as COMMAND's parent."""
        return self.no_exec or self.mask or self.serving()

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
    # An option typed on the command line wins over a source set by an AZEXEC_* variable (check() saw to one).
    given = typed or given
    env_files = [sources.EnvFile(path, label=request.label("env_files")) for path in request.env_files]
    read = [env_file.read() for env_file in env_files]
    if typed and "env_files" in request.from_environment:
        # Env files from AZEXEC_ENV_FILE still give IDs; their token yields to the option typed.
        read = [c._replace(token=None) for c in read]
    holding = [(env_file, c) for env_file, c in zip(env_files, read, strict=True) if c.token is not None]
    _one_source(request, given, holding, read)
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


def _one_source(
    request: Request,
    given: Mapping[str, str],
    holding: list[tuple[sources.EnvFile, Credential]],
    read: list[Credential],
) -> None:
    """Refuse both an option and an env file holding a token, or no token anywhere (which the files tell)."""
    if given and holding:
        option = request.label(next(iter(given)))
        raise UsageError(
            f"both {option} and {holding[-1][1].origin} supply an access token",
            f"remove {sources.TOKEN_VAR} from the file, or drop {option}",
        )
    if given or holding:
        return
    empty = [c for c in read if c.empty_token]
    if empty:
        raise TokenSourceError(f"{empty[-1].origin}: {sources.TOKEN_VAR} is empty", "it should hold the access token")
    bare = next((c for c in read if c.bare_token_line is not None), None)
    if bare is not None:
        where = f"{bare.origin}: line {bare.bare_token_line}"
        raise TokenSourceError(f"{where} {sources.BARE_TOKEN}", sources.BARE_TOKEN_HINT)
    raise no_source()


def no_source() -> UsageError:
    """The usage error for a run given no token source at all."""
    return UsageError(
        "no access token source",
        f"use --token-stdin, --token-file, --token-cmd, --token-env or an --env-file that holds {sources.TOKEN_VAR}",
    )


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
        mode="az" if request.az_login else "server" if request.identity_server else "env",
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
