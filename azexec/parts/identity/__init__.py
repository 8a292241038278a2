"""The identity server: a resident part serving the token through a local managed-identity endpoint.

It listens on 127.0.0.1 (or the one address --listen names, for containers) from
before COMMAND starts until it exits, and speaks the protocols of protocols.py:
App Service, IMDS and azd's from the start (azd's only where its clients
reach the server at a loopback address), App Service's 2017 protocol only when
--az-login offers it. COMMAND's environment is written from the protocols'
rows; server.py answers the requests, provider.py hands out the tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from azexec.errors import PartFailed
from azexec.listen import LOOPBACK, Listen, Runtime, check_runtime, gateway, resolve, url_host
from azexec.parts import Added, Context, Preview
from azexec.parts.identity.protocols import placeholders, variables
from azexec.parts.identity.provider import Provider
from azexec.parts.identity.server import Server
from azexec.redact import Secret, show
from azexec.say import say

#: Variables that would make a client pick another managed-identity protocol or server: Service Fabric's, Azure
#: Arc's, and every protocol's own (those of the protocols COMMAND is given are then set; an inherited
#: APPSETTING_WEBSITE_SITE_NAME would send msrestazure down App Service's 2017 path, VS Code's AZD_AUTH_* azd to
#: VS Code's server).
OTHER_PROTOCOLS = ("IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", *variables())
#: Variables that would make a client use another credential, or ask for another identity, than the token
#: azexec serves: removed from COMMAND's environment, as a stale subscription is.
OTHER_CREDENTIALS = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "ARM_CLIENT_ID",
    "ARM_CLIENT_ID_FILE_PATH",
    "ARM_CLIENT_SECRET",
    "ARM_CLIENT_SECRET_FILE_PATH",
    "ARM_CLIENT_CERTIFICATE",
    "ARM_CLIENT_CERTIFICATE_PATH",
    "ARM_CLIENT_CERTIFICATE_PASSWORD",
    "ARM_OIDC_TOKEN",
    "ARM_OIDC_TOKEN_FILE_PATH",
    "ARM_OIDC_REQUEST_TOKEN",
    "ARM_OIDC_REQUEST_URL",
    "ARM_USE_OIDC",
    "ARM_USE_AKS_WORKLOAD_IDENTITY",
)
#: The default listener: 127.0.0.1, its clients given that address.
LOOPBACK_ONLY = Listen()
#: How long the accept loop may take to end once woken (it is only ever between two accepts).
STOP_SECONDS = 2.0
#: How long a container runtime may take to say its default network's gateway (podman: a few hundred ms).
ASK_SECONDS = 30.0


class IdentityServer:
    """A resident part: serve the token from before COMMAND starts until it exits."""

    def __init__(
        self,
        provider: Provider,
        *,
        tenant: str | None,
        subscription: str | None,
        listen: Listen = LOOPBACK_ONLY,
        announce: Callable[[str], None] = say,
    ) -> None:
        self.provider = provider
        self.tenant = tenant
        self.subscription = subscription
        self.listen = listen
        #: Says, once, where a listener beyond loopback listens (never a secret).
        self.announce = announce
        self.server: Server | None = None
        self.thread: threading.Thread | None = None

    def preview(self, env: Mapping[str, str]) -> Preview:
        """Say what COMMAND's environment would get, the endpoint's secrets as placeholders."""
        base = f"http://{url_host(self.listen.name())}:<port>"
        steps: tuple[str, ...] = ()
        failure = None
        address = None if self.listen.runtime() is not None else self.listen.address
        if self.listen.beyond_loopback():
            try:
                address = self._address(env)
                steps = (f"listen on {self._where(address, '<port>')}",)
            except PartFailed as e:
                failure = str(e)
        added = self._variables(env, placeholders(base, self.listen.name()), address)
        return Preview("identity server", env=tuple(added.items()), steps=steps, failure=failure)

    def start(self, context: Context) -> Added:
        """Listen, and point COMMAND's managed-identity clients at the endpoint."""
        address = self._address(context.env, context.caller_mask)
        self.provider.serve(context)
        runtime = self.listen.runtime()
        # A bridge made only when a container starts (podman's) is not there yet: its gateway is bound regardless.
        ahead = runtime is not None and runtime.ask is not None
        try:
            self.server = server = Server(
                self.provider, address=address, advertised=self.listen.advertised_name(), ahead=ahead
            )
        except OSError as e:
            hint = "name an address of this machine" if address != LOOPBACK else None
            raise PartFailed(f"the identity server cannot listen on {address}: {e.strerror or e}", hint) from None
        # Every secret handed out is masked (--mask, token commands' stderr) as the tokens are: the header,
        # the paths (the IMDS endpoint's only secret is its path; terraform's debug log prints the URL), and the
        # 2017 protocol's path and secret, should --az-login offer it.
        for value in server.secrets():
            context.secrets.add(Secret(value, "the identity server"))
        if self.listen.beyond_loopback():
            # An explicit choice, said once: where, and to whom; never the path or the header.
            self.announce(f"identity server listening on {self._where(address, str(server.port))}")
        env = self._variables(context.env, server.served(), address)
        # Serving starts now, before COMMAND: a client may ask the moment it starts.
        self.thread = threading.Thread(target=server.serve, daemon=True)
        self.thread.start()
        return Added(env=tuple(env.items()))

    def _address(self, env: Mapping[str, str], mask: frozenset[int] = frozenset()) -> str:
        """Return the address to listen on: --listen's, or its runtime's bridge's (read off it, or asked)."""
        runtime = self.listen.runtime()
        if runtime is None or runtime.ask is None:
            return resolve(self.listen.address)
        check_runtime(runtime)
        return gateway(runtime, _ask(runtime, env, mask))

    def _where(self, address: str, port: str) -> str:
        """Say where the server listens and the name it is advertised under."""
        where = f"{url_host(address)}:{port}"
        name = self.listen.advertised_name()
        return f"{where}, for clients given {url_host(name)}:{port}" if name not in (None, address) else where

    def _variables(
        self, parent: Mapping[str, str], served: Mapping[str, str], address: str | None
    ) -> dict[str, str | None]:
        """Return what COMMAND's environment gets (None: removed), in PARENT's environment: SERVED, what finds
        each protocol served from the start, and what keeps clients on them.

        ADDRESS is the one listened on (None: not known yet, docker0's in a preview).
        """
        env: dict[str, str | None] = dict.fromkeys((*OTHER_PROTOCOLS, *OTHER_CREDENTIALS))
        env.update(served)
        # Clients read one spelling or the other (az and Python the lower case first): both get the union.
        given = [entry.strip() for name in ("NO_PROXY", "no_proxy") for entry in parent.get(name, "").split(",")]
        bypass = ",".join(dict.fromkeys(entry for entry in [*given, *self._unproxied(address)] if entry))
        env["NO_PROXY"] = env["no_proxy"] = bypass
        # Always: a parent's AZURE_TOKEN_CREDENTIALS=dev would make DefaultAzureCredential skip the server.
        env["AZURE_TOKEN_CREDENTIALS"] = "ManagedIdentityCredential"  # noqa: S105 - a credential's name
        # A value inherited from the parent (terraform reads them) must not pair with this token: set or removed.
        env["ARM_TENANT_ID"] = self.tenant
        env["ARM_SUBSCRIPTION_ID"] = self.subscription
        return env

    def _unproxied(self, address: str | None) -> list[str]:
        """Return what NO_PROXY must name so that no client sends a request (its header, its path) to a proxy:
        the host clients are given and the address listened on, an IPv6 one bare (Python, Go) and bracketed
        (node's URL.hostname)."""
        hosts = [self.listen.name(), *([address] if address else [])]
        if LOOPBACK in hosts:
            hosts.append("localhost")
        return [spelling for host in hosts for spelling in ((host, f"[{host}]") if ":" in host else (host,))]

    def offer_legacy(self) -> dict[str, str]:
        """Start serving the 2017-09-01 protocol (for --az-login's az login); return the variables that find it."""
        assert self.server is not None, "offered before the server started"
        self.server.legacy.offered.set()
        return self.server.legacy.variables(self.server.base)

    def keep_legacy(self) -> bool:
        """Keep serving the 2017-09-01 protocol if a client used it (an older az); otherwise stop; say which."""
        assert self.server is not None, "asked before the server started"
        if self.server.legacy.used.is_set():
            return True
        self.server.legacy.offered.clear()
        return False

    def running(self) -> None:
        """Nothing to do: the server is already serving."""

    def stop(self, code: int | None) -> None:
        """Stop listening, and kill any token command still running for a request."""
        if self.server is not None:
            self.server.stop()
            if self.thread is not None:
                self.thread.join(timeout=STOP_SECONDS)
            self.server.server_close()
        self.provider.stop()


def _ask(runtime: Runtime, env: Mapping[str, str], mask: frozenset[int]) -> bytes:
    """Run RUNTIME's ask (found on ENV's PATH) within ASK_SECONDS; return what it printed, or fail saying why."""
    from azexec import runner

    assert runtime.ask is not None, "asked of a runtime that has no ask"
    failed = f"--listen {runtime.word}: `{' '.join(runtime.ask[:4])}`"
    try:
        with runner.Step(ASK_SECONDS):
            reaped = runner.run(runtime.ask, env, ASK_SECONDS, sigmask=mask)
    except OSError as e:
        hint = f"install {runtime.daemon}, or name the address with --listen ADDRESS"
        raise PartFailed(f"{failed} cannot run: {e.strerror or e}", hint) from None
    if reaped.status == 0:
        return reaped.stdout
    said = reaped.stderr.decode("utf-8", "replace").strip().splitlines()
    if reaped.status is None:
        why = f"did not answer within {ASK_SECONDS:g}s"
    else:
        why = f"failed: {show(said[-1][:200])}" if said else f"exited with status {reaped.status}"
    raise PartFailed(f"{failed} {why}", f"check {runtime.daemon}, or name the address with --listen ADDRESS")
