"""Tokens for the identity server: the held one, more per resource, each refreshed before it runs out.

Every token after the first comes from the same TokenSource as the first and
passes the same TokenPolicy (format, expiry, not-before, --min-validity, the
first token's tenant), and is for the resource it was asked for. A resource's
token command runs once however many requests for it arrive together.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from azexec import resources
from azexec.errors import AzexecError, Refused, TokenSourceError
from azexec.token import Accepted, Claims, TokenPolicy, expired

if TYPE_CHECKING:
    from azexec.parts import Context, Say, Secrets
    from azexec.plan import Plan
    from azexec.sources import TokenSource
    from azexec.tokencmd import Jobs

#: The query parameters with which a client names a user-assigned identity, and the claim that must match each.
IDENTITY_PARAMETERS = {
    "client_id": "app",
    "object_id": "object_id",
    "principal_id": "object_id",
    "mi_res_id": "resource_id",
    "msi_res_id": "resource_id",
}

#: A token with less than this left is replaced before it is served (when its source can be read again)...
REFRESH_SECONDS = 600
#: ...or less than this share of its life (from its iat claim, else from when azexec got it): a source
#: whose tokens live 10 minutes or less is not run again on every request.
REFRESH_SHARE = 0.5
#: How many spellings of resources are remembered as served by the held token, or not.
MAX_REMEMBERED = 256
#: After a refresh failed, or gave back the very token held (az's own cache in its last minutes), while
#: that token is still valid: how long it is served before the source is read again.
RETRY_SECONDS = 30.0


class Provider:
    """Hand out the token for a resource, refreshing and checking as needed; safe across threads."""

    def __init__(
        self, first: Accepted, *, source: TokenSource, policy: TokenPolicy, jobs: Jobs, warn: Say | None = None
    ) -> None:
        self.first = first
        self.source = source
        self.policy = policy
        self.jobs = jobs
        #: Says, once per run of failures, that a refresh failed and the cached token is served meanwhile.
        self.warn: Say = warn or (lambda message: None)
        #: Told of every token handed out, once serving (see serve()).
        self.secrets: Secrets | None = None
        self.clock = policy.clock
        #: By normalised resource; "" is the held token's audience.
        self.cache: dict[str, Accepted] = {"": first}
        #: When each cached token was obtained, and until when a failed refresh is not tried again.
        self.obtained: dict[str, float] = {"": self.clock()}
        self.retry_after: dict[str, float] = {}
        self.failing = False
        #: The last fetch's result per resource, so that requests waiting on it share it.
        self.outcomes: dict[str, Accepted | Refused] = {}
        self.locks: dict[str, threading.Lock] = {}
        #: Whether the held token serves a resource, by the spelling asked (the held audiences never change).
        self.held_serves: dict[str, bool] = {}
        self.guard = threading.Lock()

    @classmethod
    def for_plan(cls, plan: Plan, *, warn: Say | None = None) -> Provider:
        """Return the provider for a checked plan: its token first, fresh ones from its source."""
        from azexec.tokencmd import Jobs

        first = Accepted(plan.token, plan.claims, plan.expires_at, (), ())
        return cls(first, source=plan.source, policy=plan.later_policy(), jobs=Jobs(), warn=warn)

    def serve(self, context: Context) -> None:
        """Start serving in resident mode: token commands get the caller's signal mask, every token is masked."""
        from azexec.tokencmd import Jobs

        secrets = self.secrets = context.secrets
        secrets.add(self.first.token)

        from azexec.say import raw

        self.jobs = Jobs(context.caller_mask, stderr=lambda data: raw(secrets.mask(data)))

    def audiences(self) -> tuple[str, ...] | None:
        """Return the held token's audiences; None when it was not decoded (--no-verify)."""
        return self.first.claims.audiences if self.first.claims is not None else None

    def check_identity(self, asked: dict[str, str]) -> None:
        """Refuse a request that names an identity (client_id, object_id, …) other than the held token's."""
        from azexec.redact import show

        claims = self.first.claims
        for name, value in asked.items():
            held = None if claims is None else getattr(claims, IDENTITY_PARAMETERS[name])
            if held is None or held.lower() != value.lower():
                mine = "unknown (--no-verify)" if claims is None else _identity(claims)
                raise Refused(
                    f"the request asks for the identity with {name} {show(value)}, but the token azexec holds is "
                    f"{mine}; unset what makes the client ask for another identity (AZURE_CLIENT_ID, ARM_CLIENT_ID)"
                )

    def check_tenant(self, asked: str) -> None:
        """Refuse a request for a token from another tenant than the held token's (azd's tenantId)."""
        from azexec.redact import show

        held = self.first.claims.tenant if self.first.claims is not None else None
        known = held or next((tenant.value for tenant in self.policy.tenants), None)
        if known is not None and asked.strip().lower() != known.lower():
            raise Refused(
                f"the request asks for a token from tenant {show(asked)}, but the token azexec holds is from tenant "
                f"{known}; give azexec a token from that tenant, or choose a subscription of this one"
            )

    def held_expiry(self) -> float:
        """Return when the token held for its own audience expires (the first, or the last refreshed)."""
        return self.cache[""].expires_at

    def covered(self) -> bool:
        """Tell whether an expiry is the server's to handle: its source is read again, and that works."""
        return self.source.rereadable() and not self.failing

    def get(self, resource: str) -> Accepted:
        """Return a valid token for RESOURCE, or raise Refused saying why not."""
        held = self.held_serves.get(resource)
        if held is None:
            held = resources.serves(self.audiences(), resource)
            if len(self.held_serves) < MAX_REMEMBERED:  # a client asking for endless spellings is not remembered
                self.held_serves[resource] = held
        if not held and not self.source.per_resource():
            raise Refused(self._unservable(resource))
        key = "" if held else resources.normalize(resource)
        seen = self.outcomes.get(key)
        with self._lock(key):
            latest = self.outcomes.get(key)
            if latest is not seen and latest is not None:
                # Another request fetched while this one waited: one run answers them all.
                if isinstance(latest, Refused):
                    raise latest
                if latest.expires_at > self.clock():
                    return latest
            return self._cached_or_fetched(key, None if held else resource)

    def _cached_or_fetched(self, key: str, resource: str | None) -> Accepted:
        """Return the cached token for KEY while it is good, else a fresh one (under KEY's lock)."""
        current = self.cache.get(key)
        now = self.clock()
        valid = current is not None and current.expires_at > now
        if current is not None and (self._fresh(key, current, now) or (valid and self._resting(key, now))):
            return current
        if not self.source.rereadable():
            if current is not None and valid:
                return current
            raise Refused(self._expired(current))
        try:
            fresh = self._fetch(resource)
        except Refused as e:
            if current is not None and valid:
                return self._keep(key, current, e)
            self.outcomes[key] = e
            raise
        if current is not None and fresh.token == current.token and self.source.costly():
            # The command has nothing newer yet (az's own cache): run it again later, not on every request.
            self.retry_after[key] = self.clock() + RETRY_SECONDS
        self.cache[key] = self.outcomes[key] = fresh
        self.obtained[key] = self.clock()
        self.failing = False
        return fresh

    def _fresh(self, key: str, token: Accepted, now: float) -> bool:
        """Tell whether TOKEN has enough of its life left not to be replaced yet."""
        issued = token.claims.issued_at if token.claims is not None else None
        life = token.expires_at - (issued if issued is not None else self.obtained.get(key, now))
        return token.expires_at - now >= min(REFRESH_SECONDS, life * REFRESH_SHARE)

    def _resting(self, key: str, now: float) -> bool:
        """Tell whether a refresh failed a moment ago (and is not to be tried again yet)."""
        return self.retry_after.get(key, 0.0) > now

    def _keep(self, key: str, current: Accepted, error: Refused) -> Accepted:
        """Serve CURRENT, still valid, after refreshing it failed with ERROR; say so once, try again later."""
        from azexec.token import describe_span

        self.retry_after[key] = self.clock() + RETRY_SECONDS
        self.outcomes[key] = current
        if not self.failing:
            self.failing = True
            left = describe_span(current.expires_at - self.clock())
            self.warn(f"{error}; serving the token held, valid {left} more, and trying again later")
        return current

    def stop(self) -> None:
        """Fetch nothing more, and kill every token command still running."""
        self.jobs.stop()

    def _lock(self, key: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def _fetch(self, resource: str | None) -> Accepted:
        """Read the source again (for RESOURCE, or for the held audience) and accept the token it gives."""
        from azexec.sources import TOKEN_VAR

        wanted = resource or (self.audiences() or (resources.DEFAULT_RESOURCE,))[0]
        try:
            credential = self.source.read(wanted, jobs=self.jobs)
            if credential.token is None:
                raise TokenSourceError(f"{self.source.origin} no longer holds {TOKEN_VAR}", "put the token back")
            accepted = self.policy.accept(credential.token, resource=wanted)
        except AzexecError as e:
            raise Refused(f"refreshing the token failed: {e}") from None
        if self.secrets is not None:
            # Before the token is answered: COMMAND cannot print it before the mask knows it.
            self.secrets.add(accepted.token)
        return accepted

    def _unservable(self, resource: str) -> str:
        from azexec.redact import show

        held = ", ".join(show(a) for a in self.audiences() or ()) or "Azure Resource Manager (--no-verify)"
        return (
            f"the token azexec holds is for {held}, not for {show(resource)}; to serve any resource, put {{resource}}"
            ' in --token-cmd, e.g. --token-cmd "az account get-access-token --resource {resource} -o json"'
        )

    def _expired(self, current: Accepted | None) -> str:
        if current is None:  # pragma: no cover - a held token always exists
            return "no token is held"
        message = str(expired(current.expires_at, self.clock()))
        return (
            f"{message}; its source (stdin, a variable, a pipe) cannot be read again: restart azexec with a fresh one"
        )


def _identity(claims: Claims) -> str:
    """Describe whose token this is, by the claims a request can name."""
    from azexec.redact import show

    named = [("client_id", claims.app), ("object_id", claims.object_id), ("mi_res_id", claims.resource_id)]
    return ", ".join(f"{name} {show(value)}" for name, value in named if value) or "an identity without those claims"
