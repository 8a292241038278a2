"""Build COMMAND's environment, then exec it, or stay beside it with the parts the plan asks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from azexec.program import BOURNE_SHELL, execute, require

if TYPE_CHECKING:
    from azexec.parts import Part, Preview, Say
    from azexec.plan import Plan


class Modes(NamedTuple):
    """How COMMAND runs, as the user chose: exec unless something must live beside it."""

    #: --no-exec: stay as COMMAND's parent even with nothing else to do.
    stay: bool = False
    #: --mask: replace the token in COMMAND's output.
    mask: bool = False
    #: --identity-server: serve the token through a local managed-identity endpoint.
    identity_server: bool = False
    #: --listen: the identity server's address beyond loopback (docker, or an IP), or None: 127.0.0.1.
    listen: str | None = None
    #: --advertise: the host name its clients are given, or None: the default for --listen's address.
    advertise: str | None = None
    #: --az-login: log today's az in through the identity server, in a private directory.
    az_login: bool = False
    #: --token-cmd-timeout: how long a helper (az login) may take.
    helper_timeout: float = 60.0

    def resident(self) -> bool:
        """Tell whether azexec stays as COMMAND's parent."""
        return self.stay or self.mask or self.identity_server or self.az_login


def child_environment(
    parent: Mapping[str, str], variables: Mapping[str, str | None], removed: Iterable[str] = ()
) -> dict[str, str]:
    """Return PARENT with VARIABLES set; a None value, or a REMOVED name, is deleted.

    Deleting matters: a stale subscription inherited from the parent must never
    pair with a new token.
    """
    env = dict(parent)
    for name in removed:
        env.pop(name, None)
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def default_shell(environ: Mapping[str, str]) -> list[str]:
    """Return the user's shell, for when no COMMAND is given at a terminal."""
    return [environ.get("SHELL") or BOURNE_SHELL]


def parts(plan: Plan, modes: Modes, *, warn: Say, diagnose: Say, note: Say) -> list[Part]:
    """Return the parts that live beside COMMAND, in the order they start (and the reverse of their stops)."""
    built: list[Part] = []
    serving = modes.identity_server or modes.az_login
    if modes.mask:
        from azexec.parts.mask import Mask

        # First to start, last to stop: what COMMAND left in its pipes is passed on after the
        # identity server has stopped answering, so a job COMMAND left behind gets no token.
        built.append(Mask(plan.token))
    provider = None
    server = None
    if serving:
        from azexec.listen import Listen
        from azexec.parts.identity import IdentityServer
        from azexec.parts.provider import Provider

        provider = Provider.for_plan(plan, warn=warn)
        tenant = plan.tenant.value if plan.tenant else None
        subscription = plan.subscription.value if plan.subscription else None
        listen = Listen(modes.listen, modes.advertise) if modes.listen is not None else Listen()
        server = IdentityServer(provider, tenant=tenant, subscription=subscription, listen=listen, announce=diagnose)
        built.append(server)
    if modes.az_login:
        from azexec.parts.azlogin import AzLogin

        assert server is not None, "--az-login serves through the identity server"
        subscription = plan.subscription.value if plan.subscription else None
        built.append(AzLogin(server, subscription=subscription, timeout=modes.helper_timeout, note=note))
    if plan.claims is not None:
        from azexec.parts.watch import ExpiryWatch

        if provider is None:
            built.append(ExpiryWatch(plan.expires_at, warn=warn, diagnose=diagnose))
        else:
            # Quiet while the server refreshes the token; back when refreshing fails.
            built.append(ExpiryWatch(provider.held_expiry, covered=provider.covered, warn=warn, diagnose=diagnose))
    return built


def preview(plan: Plan, modes: Modes, env: Mapping[str, str]) -> list[Preview]:
    """Say what each part would do, in the order they would start, doing nothing (--dry-run)."""
    if not modes.resident():
        return []
    current = dict(env)
    said: list[Preview] = []
    for part in parts(plan, modes, warn=_silent, diagnose=_silent, note=_silent):
        said.append(part.preview(current))
        for name, value in said[-1].env:
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value
    return said


def _silent(message: str) -> None:
    """Say nothing: a preview runs nothing that could warn."""


def start(
    argv: Sequence[str],
    env: Mapping[str, str],
    plan: Plan,
    modes: Modes,
    *,
    closed_fds: tuple[int, ...],
    warn: Say,
    diagnose: Say,
    note: Say,
) -> NoReturn:
    """Run ARGV: exec it, or stay as its parent with the parts MODES ask for.

    WARN prints warnings and NOTE what azexec waits for (both silenced by -q); DIAGNOSE explains a
    failure after COMMAND exits. CLOSED_FDS are the standard descriptors the caller left closed.
    """
    if not modes.resident():
        execute(argv, env)
    if modes.az_login:
        # A COMMAND that cannot run fails now, not after a whole az login round trip.
        require(argv[0], env)
    from azexec import supervise

    built = parts(plan, modes, warn=warn, diagnose=diagnose, note=note)
    supervise.run(argv, env, built, closed_fds=closed_fds)
