"""Parse the command line and wire the pieces; every error becomes an exit status here."""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import TYPE_CHECKING

import click

from azexec.errors import AzexecError, UsageError

if TYPE_CHECKING:  # click 8.5 made ParamType generic; older releases cannot subscript it
    _FloatType = click.ParamType[float, object]
    _TextType = click.ParamType[str, object]
else:
    _FloatType = _TextType = click.ParamType

#: Completes file names; checks nothing, so that azexec's own errors (exit 125) say what is wrong.
_PATH = click.Path(readable=False)

#: Every option shows its AZEXEC_* variable in --help.
option = functools.partial(click.option, show_envvar=True)

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")

EXIT_CODES = """\b
Exit status, like env(1):
  COMMAND's own   azexec becomes COMMAND (exec), or passes its status on
                  (--no-exec, --mask; death by signal N is re-raised)
  125             azexec could not obtain or accept the token
  126             COMMAND was found but cannot be executed
  127             COMMAND was not found
  2               usage error
"""


class Duration(_FloatType):
    """A duration such as 90s, 10m, 1h or 1h30m; a bare number is seconds."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        if text.isdigit():
            return float(text)
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            self.fail(f"{value!r} is not a duration such as 90s, 10m or 1h", param, ctx)
        hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return float(hours * 3600 + minutes * 60 + seconds)


class Identifier(_TextType):
    """A subscription GUID, or a tenant GUID or domain."""

    def __init__(self, name: str, tenant: bool) -> None:
        self.name = name
        self.tenant = tenant

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from azexec import ids

        text = str(value).strip()
        if self.tenant and not ids.is_tenant(text):
            self.fail(f"{value!r} is neither a tenant GUID nor a domain such as contoso.onmicrosoft.com", param, ctx)
        if not self.tenant and not ids.is_guid(text):
            self.fail(f"{value!r} is not a subscription ID (a GUID)", param, ctx)
        return text


@click.command(
    context_settings={
        "help_option_names": ["-h", "--help"],
        # Everything from COMMAND on is COMMAND's, options included.
        "allow_interspersed_args": False,
        "max_content_width": 100,
        # Every option has a default in the environment: AZEXEC_TOKEN_CMD, AZEXEC_ENV_FILE, …
        "auto_envvar_prefix": "AZEXEC",
    },
    epilog=EXIT_CODES,
)
@option("--token-stdin", is_flag=True, help="Read the token from stdin (prompting without echo at a terminal).")
@option(
    "--token-file",
    type=_PATH,
    metavar="PATH",
    help="Read the token from PATH; - is stdin. Works with <(…).",
)
@option("--token-cmd", metavar="CMD", help="Run CMD (split like a shell, no shell) and read the token from its stdout.")
@option(
    "--token-cmd-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Kill --token-cmd and all it started after this long.",
)
@option("--token-env", metavar="NAME", help="Take the token from variable NAME; COMMAND does not inherit NAME.")
@option(
    "--env-file",
    "env_files",
    envvar="AZEXEC_ENV_FILE",
    type=_PATH,
    multiple=True,
    metavar="PATH",
    help="Take AZURE_CLI_* values from a .env file (repeatable; a later file wins).",
)
@option("--subscription", type=Identifier("guid", tenant=False), metavar="ID", help="Subscription ID for COMMAND.")
@option(
    "--tenant", type=Identifier("tenant", tenant=True), metavar="ID", help="Tenant ID or domain (default: the token's)."
)
@option(
    "--min-validity",
    type=Duration(),
    metavar="DURATION",
    help="Fail unless the token is valid this much longer (90s, 10m, 1h).",
)
@option(
    "--audience",
    "audiences",
    envvar="AZEXEC_AUDIENCE",
    multiple=True,
    metavar="AUD",
    help="Require this audience (repeatable); default: warn unless it is Azure Resource Manager.",
)
@option(
    "--no-exec",
    is_flag=True,
    help="Stay as COMMAND's parent (forwarding signals, passing on its exit status) and watch the token's expiry.",
)
@option(
    "--mask",
    is_flag=True,
    help="Replace the token with *** in COMMAND's stdout and stderr (implies --no-exec; COMMAND sees pipes, "
    "not a terminal).",
)
@option("--no-verify", is_flag=True, help="Skip the JWT checks, for opaque tokens; format checks still run.")
@option("--dry-run", is_flag=True, help="Check everything and report what would run, token redacted; run nothing.")
@option("--json", "as_json", envvar="AZEXEC_JSON", is_flag=True, help="With --dry-run, print the report as JSON.")
@option("-q", "--quiet", is_flag=True, help="Do not print warnings.")
@click.version_option(package_name="azexec", message="%(prog)s %(version)s")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[--] COMMAND [ARG]...")
def cli(
    token_stdin: bool,
    token_file: str | None,
    token_cmd: str | None,
    token_cmd_timeout: float,
    token_env: str | None,
    env_files: tuple[str, ...],
    subscription: str | None,
    tenant: str | None,
    min_validity: float | None,
    audiences: tuple[str, ...],
    no_exec: bool,
    mask: bool,
    no_verify: bool,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with an Azure access token in its environment only.

    azexec reads the token from one source, checks it, and runs COMMAND with
    AZURE_CLI_ACCESS_TOKEN, AZURE_CLI_SUBSCRIPTION_ID and AZURE_CLI_TENANT_ID
    set, for Azure CLI's bring-your-own-token mode. It writes nothing to disk
    and never prints the token.

    The token is decoded without verifying its signature (az and Azure do
    that): azexec checks that it has not expired, that its tenant matches, and
    that its audience is Azure Resource Manager.

    \b
    Examples:
      azexec --token-cmd "vault kv get -field=token secret/azure" -- az group list
      azexec --token-file <(pass show azure/arm) -- az account show
      azexec --env-file azure.env --token-env ARM_TOKEN -- make deploy
      az account get-access-token -o json | azexec --token-stdin -- terraform plan
    """
    from azexec import launch, plan

    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run")
    argv = list(command)
    shell = not argv and not dry_run
    if shell:
        if not sys.stdin.isatty():
            raise click.UsageError("no COMMAND given (a shell starts only when stdin is a terminal)")
        argv = launch.default_shell(os.environ)

    request = plan.Request(
        token_stdin=token_stdin,
        token_file=token_file,
        token_cmd=token_cmd,
        token_cmd_timeout=token_cmd_timeout,
        token_env=token_env,
        env_files=env_files,
        subscription=subscription,
        tenant=tenant,
        min_validity=min_validity,
        audiences=audiences,
        verify=not no_verify,
    )
    try:
        checked = plan.prepare(request, os.environ)
        warn = _ignore if quiet else _warn
        for warning in checked.warnings:
            warn(warning)
        if shell and not quiet:
            _echo_err(f"starting {argv[0]} with the token set; exit the shell to drop it")
        env = launch.child_environment(os.environ, checked.variables(), checked.removed)
        if dry_run:
            from azexec import report

            executable = launch.which(argv[0], env) if argv else None
            render = report.as_json if as_json else report.as_text
            click.echo(render(checked, argv, executable))
            return
        if no_exec or mask or os.name != "posix":
            from azexec import supervise

            supervise.run(
                argv,
                env,
                secret=checked.token.value if mask else None,
                expires_at=checked.claims.expires_at if checked.claims else None,
                warn=warn,
                report=_echo_err,
            )
        launch.launch(argv, env)
    except UsageError as e:
        raise click.UsageError(str(e)) from None
    except AzexecError as e:
        _echo_err(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(130)


def _warn(message: str) -> None:
    _echo_err(f"warning: {message}")


def _ignore(message: str) -> None:
    """Drop a warning (-q)."""


def _echo_err(message: str) -> None:
    """Print one line of azexec's own on stderr."""
    click.echo(f"azexec: {message}", err=True)


def main() -> None:
    """Run the command line; the console script's entry point."""
    cli(prog_name="azexec")
