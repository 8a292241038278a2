"""Tokens for the identity server: the held one, more per resource, each refreshed before it runs out.

Every token obtained after the first passes the same checks as the first
(format, expiry, not-before), carries the first token's tenant, and is for the
resource it was asked for. A resource's token command runs once however many
requests for it arrive together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from azexec import resources, sources, token
from azexec.errors import AzexecError
from azexec.redact import show
from azexec.token import Claims

if TYPE_CHECKING:
    from azexec.plan import Plan, Request

#: A token with less than this left is replaced before it is served (when its source can be read again).
REFRESH_SECONDS = 600


class Refused(Exception):
    """Raised when the server cannot serve a request; the message is azexec's usual one line."""


class Served(NamedTuple):
    """A checked token, and what the server says about it."""

    value: str
    expires_at: int
    not_before: int | None
    client_id: str | None
    #: The token's audiences; None when it was not decoded (--no-verify).
    audiences: tuple[str, ...] | None


class Source(NamedTuple):
    """Where fresh tokens come from: a token command, a token file, or nowhere (read once)."""

    token_cmd: str | None
    token_file: str | None
    timeout: float

    def rereadable(self) -> bool:
        """Tell whether a fresh token can be had from this source."""
        return self.token_cmd is not None or self._regular_file()

    def per_resource(self) -> bool:
        """Tell whether the source can give a token for any resource ({resource} in the command)."""
        from azexec.tokencmd import takes_resource

        return self.token_cmd is not None and takes_resource(self.token_cmd)

    def _regular_file(self) -> bool:
        import os
        import stat

        if self.token_file is None or self.token_file == "-":  # noqa: S105 - "-" is stdin, not a password
            return False
        try:
            return stat.S_ISREG(os.stat(self.token_file).st_mode)
        except OSError:
            return False


class Provider:
    """Hand out the token for a resource, refreshing and checking as needed; safe across threads."""

    def __init__(
        self,
        first: Served,
        *,
        source: Source,
        tenant: str | None,
        verify: bool,
        running: set[int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.first = first
        self.source = source
        self.tenant = tenant
        self.verify = verify
        self.running = running
        self.clock = clock
        #: By normalised resource; "" is the held token's audience.
        self.cache: dict[str, Served] = {"": first}
        #: The last fetch's result per resource, so that requests waiting on it share it.
        self.outcomes: dict[str, Served | Refused] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.guard = threading.Lock()

    def refreshable(self) -> bool:
        """Tell whether an expiring token will be replaced (so no expiry is worth a warning)."""
        return self.source.rereadable()

    def get(self, resource: str) -> Served:
        """Return a valid token for RESOURCE, or raise Refused saying why not."""
        held = resources.serves(self.first.audiences, resource)
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
                fresh = self._fetch(resource if not held else None)
            except Refused as e:
                self.outcomes[key] = e
                raise
            self.cache[key] = self.outcomes[key] = fresh
            return fresh

    def _lock(self, key: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def _fetch(self, resource: str | None) -> Served:
        """Get a fresh token (for RESOURCE, or for the held audience) and check it like the first."""
        from azexec import tokencmd

        asked = resource or resources.DEFAULT_RESOURCE
        try:
            if self.source.token_cmd is not None:
                data = tokencmd.run_detached(self.source.token_cmd, self.source.timeout, asked, self.running)
                credential = sources.parse(sources.decode(data, "--token-cmd"), "--token-cmd")
            else:
                assert self.source.token_file is not None
                credential = sources.from_file(self.source.token_file)
            assert credential.token is not None
            return self._check(credential.token.value, credential.token.origin, resource)
        except AzexecError as e:
            raise Refused(f"refreshing the token failed: {e}") from None

    def _check(self, value: str, origin: str, resource: str | None) -> Served:
        """Check a fresh token as the first was checked, plus its tenant and audience."""
        token.check_format(value, origin)
        if not self.verify:
            return Served(value, int(self.clock()) + 3600, None, None, None)
        claims = token.decode(value, origin)
        token.check_validity(claims, None, self.clock())
        if self.tenant is not None and claims.tenant is not None and claims.tenant.lower() != self.tenant.lower():
            raise Refused(
                f"the refreshed token is for tenant {claims.tenant}, not {self.tenant}; check --token-cmd or the file"
            )
        wanted = resource if resource is not None else (self.first.audiences or (resources.DEFAULT_RESOURCE,))[0]
        if not resources.serves(claims.audiences, wanted):
            found = ", ".join(show(a) for a in claims.audiences) or "none"
            raise Refused(f"the token obtained for {show(wanted)} is for audience {found}; check --token-cmd")
        return served(value, claims)

    def _unservable(self, resource: str) -> str:
        held = ", ".join(show(a) for a in self.first.audiences or ()) or "Azure Resource Manager (--no-verify)"
        return (
            f"the token azexec holds is for {held}, not for {show(resource)}; to serve any resource, "
            'put {resource} in --token-cmd, e.g. --token-cmd "az account get-access-token --resource {resource}"'
        )

    def _expired(self, current: Served | None) -> str:
        if current is None:  # pragma: no cover - a held token always exists
            return "no token is held"
        message = str(token.expired(current.expires_at, self.clock()))
        return (
            f"{message}; its source (stdin, a variable, a pipe) cannot be read again: restart azexec with a fresh one"
        )


def served(value: str, claims: Claims | None) -> Served:
    """Describe a checked token for serving."""
    if claims is None:
        return Served(value, int(time.time()) + 3600, None, None, None)
    return Served(value, claims.expires_at, claims.not_before, claims.app, claims.audiences)


def for_plan(plan: Plan, request: Request) -> Provider:
    """Return the provider for a checked plan: its token first, fresh ones from the request's source."""
    return Provider(
        served(plan.token.value, plan.claims),
        source=Source(request.token_cmd, request.token_file, request.token_cmd_timeout),
        tenant=plan.claims.tenant if plan.claims else None,
        verify=request.verify,
        running=set(),
    )
