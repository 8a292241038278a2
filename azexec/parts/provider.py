"""Tokens for the identity server: the held one, more per resource, each refreshed before it runs out.

Every token after the first comes from the same TokenSource as the first and
passes the same TokenPolicy (format, expiry, not-before, --min-validity, the
first token's tenant), and is for the resource it was asked for. A resource's
token command runs once however many requests for it arrive together.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from azexec import resources
from azexec.errors import AzexecError, Refused, TokenSourceError
from azexec.token import Accepted, TokenPolicy, expired

if TYPE_CHECKING:
    from azexec.parts import Context, Secrets
    from azexec.plan import Plan
    from azexec.sources import TokenSource
    from azexec.tokencmd import Jobs

#: A token with less than this left is replaced before it is served (when its source can be read again).
REFRESH_SECONDS = 600


class Provider:
    """Hand out the token for a resource, refreshing and checking as needed; safe across threads."""

    def __init__(self, first: Accepted, *, source: TokenSource, policy: TokenPolicy, jobs: Jobs) -> None:
        self.first = first
        self.source = source
        self.policy = policy
        self.jobs = jobs
        #: Told of every token handed out, once serving (see serve()).
        self.secrets: Secrets | None = None
        self.clock = policy.clock
        #: By normalised resource; "" is the held token's audience.
        self.cache: dict[str, Accepted] = {"": first}
        #: The last fetch's result per resource, so that requests waiting on it share it.
        self.outcomes: dict[str, Accepted | Refused] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.guard = threading.Lock()

    @classmethod
    def for_plan(cls, plan: Plan) -> Provider:
        """Return the provider for a checked plan: its token first, fresh ones from its source."""
        from azexec.tokencmd import Jobs

        first = Accepted(plan.token, plan.claims, plan.expires_at, (), ())
        return cls(first, source=plan.source, policy=plan.later_policy(), jobs=Jobs())

    def serve(self, context: Context) -> None:
        """Start serving in resident mode: token commands get the caller's signal mask, every token is masked."""
        from azexec.tokencmd import Jobs

        secrets = self.secrets = context.secrets
        secrets.add(self.first.token)

        def stderr(data: bytes) -> None:
            if data:
                with contextlib.suppress(OSError):
                    os.write(2, secrets.mask(data))

        self.jobs = Jobs(context.caller_mask, stderr=stderr)

    def audiences(self) -> tuple[str, ...] | None:
        """Return the held token's audiences; None when it was not decoded (--no-verify)."""
        return self.first.claims.audiences if self.first.claims is not None else None

    def refreshable(self) -> bool:
        """Tell whether an expiring token will be replaced (so no expiry is worth a warning)."""
        return self.source.rereadable()

    def get(self, resource: str) -> Accepted:
        """Return a valid token for RESOURCE, or raise Refused saying why not."""
        held = resources.serves(self.audiences(), resource)
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
            current = self.cache.get(key)
            if current is not None and current.expires_at - self.clock() >= REFRESH_SECONDS:
                return current
            if not self.source.rereadable():
                if current is not None and current.expires_at > self.clock():
                    return current
                raise Refused(self._expired(current))
            try:
                fresh = self._fetch(None if held else resource)
            except Refused as e:
                self.outcomes[key] = e
                raise
            self.cache[key] = self.outcomes[key] = fresh
            return fresh

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
            f"the token azexec holds is for {held}, not for {show(resource)}; to serve any resource, "
            'put {resource} in --token-cmd, e.g. --token-cmd "az account get-access-token --resource {resource}"'
        )

    def _expired(self, current: Accepted | None) -> str:
        if current is None:  # pragma: no cover - a held token always exists
            return "no token is held"
        message = str(expired(current.expires_at, self.clock()))
        return (
            f"{message}; its source (stdin, a variable, a pipe) cannot be read again: restart azexec with a fresh one"
        )
