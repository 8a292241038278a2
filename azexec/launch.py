"""Build COMMAND's environment, then exec it, or stay beside it with the parts the plan asks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn

from azexec.program import BOURNE_SHELL, execute, require

if TYPE_CHECKING:
    from azexec.parts import Part, Preview, Say
    from azexec.plan import Plan, Request


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


def parts(plan: Plan, request: Request, *, warn: Say, diagnose: Say, note: Say) -> list[Part]:
    """Return the parts that live beside COMMAND, in the order they start (and the reverse of their stops)."""
    built: list[Part] = []
    if request.mask:
        from azexec.parts.mask import Mask

        # First to start, last to stop: what COMMAND left in its pipes is passed on after the
        # identity server has stopped answering, so a job COMMAND left behind gets no token.
        built.append(Mask(plan.token))
    provider = None
    server = None
    if request.serving():
        from azexec.listen import Listen
        from azexec.parts.identity import IdentityServer
        from azexec.parts.identity.provider import Provider

        provider = Provider.for_plan(plan, warn=warn)
        tenant = plan.tenant.value if plan.tenant else None
        subscription = plan.subscription.value if plan.subscription else None
        listen = Listen(request.listen, request.advertise) if request.listen is not None else Listen()
        server = IdentityServer(provider, tenant=tenant, subscription=subscription, listen=listen, announce=diagnose)
        built.append(server)
    if request.az_login:
        from azexec.parts.azlogin import AzLogin

        assert server is not None, "--az-login serves through the identity server"
        subscription = plan.subscription.value if plan.subscription else None
        built.append(AzLogin(server, subscription=subscription, timeout=request.token_cmd_timeout, note=note))
    if plan.claims is not None:
        from azexec.parts.watch import ExpiryWatch

        if provider is None:
            built.append(ExpiryWatch(plan.expires_at, warn=warn, diagnose=diagnose))
        else:
            # Quiet while the server refreshes the token; back when refreshing fails.
            built.append(ExpiryWatch(provider.held_expiry, covered=provider.covered, warn=warn, diagnose=diagnose))
    return built


def preview(plan: Plan, request: Request, env: Mapping[str, str]) -> list[Preview]:
    """Say what each part would do, in the order they would start, doing nothing (--dry-run)."""
    if not request.resident():
        return []
    current = dict(env)
    said: list[Preview] = []
    for part in parts(plan, request, warn=_silent, diagnose=_silent, note=_silent):
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
    request: Request,
    *,
    closed_fds: tuple[int, ...],
    warn: Say,
    diagnose: Say,
    note: Say,
) -> NoReturn:
    """Run ARGV: exec it, or stay as its parent with the parts REQUEST asks for.

    WARN prints warnings and NOTE what azexec waits for (both silenced by -q); DIAGNOSE explains a
    failure after COMMAND exits. CLOSED_FDS are the standard descriptors the caller left closed.
    """
    if not request.resident():
        execute(argv, env)
    if request.az_login:
        # A COMMAND that cannot run fails now, not after a whole az login round trip.
        require(argv[0], env)
    from azexec import supervise

    built = parts(plan, request, warn=warn, diagnose=diagnose, note=note)
    supervise.run(argv, env, built, closed_fds=closed_fds)
