"""Parse the command line and wire the pieces; every error becomes an exit status here."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from azexec.errors import AzexecError, UsageError

if TYPE_CHECKING:  # click 8.5 made ParamType generic; older releases cannot subscript it
    from azexec.plan import Plan, Request

    # ParamType's own parameters, where mypy can see them.
    _FloatType = click.ParamType[float, object]
    _TextType = click.ParamType[str, object]
else:
    _FloatType = _TextType = click.ParamType

F = TypeVar("F", bound=Callable[..., object])

#: Completes file names; checks nothing, so that azexec's own errors (exit 125) say what is wrong.
_PATH = click.Path(readable=False)

#: The sections of --help, in order; an option names its own.
GROUPS = ("Where the token comes from", "Checks", "How COMMAND runs", "Output")


class GroupedOption(click.Option):
    """An option that belongs to one of --help's GROUPS."""

    def __init__(self, *args: object, group: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # click's own keyword arguments
        self.group = group


class GroupedCommand(click.Command):
    """A command whose --help lists its options by GROUPS, the choices a user makes in that order."""

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        """Return -h/--help, which no AZEXEC_* variable may set: a variable must not turn a run into --help."""
        option = super().get_help_option(ctx)
        if option is not None:
            option.allow_from_autoenv = False
        return option

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records: dict[str, list[tuple[str, str]]] = {name: [] for name in GROUPS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                records[getattr(param, "group", GROUPS[-1])].append(record)
        for name, rows in records.items():
            with formatter.section(name):
                formatter.write_dl(rows)


def option(*names: str, group: str, **attributes: object) -> Callable[[F], F]:
    """Declare an option of GROUP; its AZEXEC_* variable is the rule's (see ENVIRONMENT)."""
    return click.option(*names, cls=GroupedOption, group=group, **attributes)


SOURCE, CHECKS, RUNS, OUTPUT = GROUPS

ENVIRONMENT = """\b
Each option but -h, --man and --version has a variable (AZEXEC_TOKEN_CMD
for --token-cmd; AZEXEC_ENV_FILE takes paths split by :); a typed option wins.
"""

EXIT_CODES = """\b
Exit status as env(1)'s: COMMAND's own (death by signal N re-raised), 125 azexec
could not obtain or accept the token, 126 COMMAND cannot be executed, 127 COMMAND
not found, 2 usage. More: azexec --man.
"""


def _not_a_token(text: str, kind: str, param: click.Parameter | None, ctx: click.Context | None) -> None:
    """Fail (a usage error, as every misplaced token is) when TEXT is a token typed where KIND belongs."""
    from azexec.redact import STDIN_HINT, looks_like_token, show

    if looks_like_token(text):
        raise click.BadParameter(f"{show(text)} looks like a token, not {kind}; {STDIN_HINT}", ctx, param)


class Duration(_FloatType):
    """A duration such as 90s, 10m, 1h, 1h30m or 0.5; a bare number is seconds."""

    name = "duration"

    def __init__(self, *, maximum: float, positive: bool = False) -> None:
        self.maximum = maximum
        self.positive = positive

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        from azexec.redact import show

        text = str(value).strip().lower()
        seconds: float | None = None
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif re.fullmatch(r"\d{1,12}(\.\d{1,9})?", text):
            seconds = float(text)
        elif text and (match := re.fullmatch(r"(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,12})s)?", text)):
            hours, minutes, secs = (int(part or 0) for part in match.groups())
            seconds = float(hours * 3600 + minutes * 60 + secs)
        _not_a_token(str(value), "a duration", param, ctx)
        if seconds is None or not math.isfinite(seconds):
            self.fail(f"'{show(str(value))}' is not a duration such as 90s, 10m or 1h", param, ctx)
        if self.positive and seconds <= 0:
            self.fail("must be more than 0", param, ctx)
        if seconds > self.maximum:
            self.fail(f"must be at most {self.maximum / 3600:g}h", param, ctx)
        return seconds


class Identifier(_TextType):
    """A subscription GUID, or a tenant GUID or domain."""

    def __init__(self, name: str, *, tenant: bool) -> None:
        self.name = name
        self.tenant = tenant

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from azexec import ids
        from azexec.redact import show

        text = str(value).strip()
        _not_a_token(text, "a tenant" if self.tenant else "a subscription ID", param, ctx)
        if self.tenant and not ids.is_tenant(text):
            self.fail(
                f"'{show(text)}' is neither a tenant GUID nor a domain such as contoso.onmicrosoft.com", param, ctx
            )
        if not self.tenant and not ids.is_guid(text):
            self.fail(f"'{show(text)}' is not a subscription ID (a GUID)", param, ctx)
        return text


class Listener(_TextType):
    """--listen's address (a runtime's word or one IP address, never a wildcard), or --advertise's host name."""

    def __init__(self, name: str, *, address: bool) -> None:
        self.name = name
        self.address = address

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from azexec import listen
        from azexec.redact import show

        text = str(value).strip()
        _not_a_token(text, "an address" if self.address else "a host name", param, ctx)
        problem = listen.check_address(text) if self.address else listen.check_name(text)
        if problem is not None:
            self.fail(f"'{show(text)}' {problem}", param, ctx)
        return listen.canonical(text) if self.address else text


AZ_NOTE = (
    "released az (2.91.0 and older) ignores AZURE_CLI_ACCESS_TOKEN (Azure/azure-cli PR #31575 is a draft): "
    "add --az-login to log az in through azexec's identity server"
)

#: Durations beyond a week are mistakes, and overflow the clock calls that wait on them.
MAX_DURATION = 7 * 24 * 3600.0


@click.command(
    cls=GroupedCommand,
    context_settings={
        "help_option_names": ["-h", "--help"],
        # Everything from COMMAND on is COMMAND's, options included.
        "allow_interspersed_args": False,
        "max_content_width": 100,
        # Every option has a default in the environment: AZEXEC_TOKEN_CMD, AZEXEC_ENV_FILE, …
        "auto_envvar_prefix": "AZEXEC",
    },
    epilog=ENVIRONMENT + "\n" + EXIT_CODES,
)
@option(
    "--token-cmd",
    metavar="CMD",
    group=SOURCE,
    help="Run CMD (no shell), read its stdout.",
)
@option(
    "--token-file",
    type=_PATH,
    metavar="PATH",
    group=SOURCE,
    help="Read PATH (- is stdin; <(…) works).",
)
@option(
    "--token-env",
    metavar="NAME",
    group=SOURCE,
    help="Read variable NAME (not passed on).",
    shell_complete=lambda ctx, param, incomplete: _variable_names(incomplete),
)
@option(
    "--token-stdin",
    is_flag=True,
    group=SOURCE,
    help="Read stdin (hidden prompt at a terminal).",
)
@option(
    "--env-file",
    "env_files",
    envvar="AZEXEC_ENV_FILE",
    type=_PATH,
    multiple=True,
    metavar="PATH",
    group=SOURCE,
    help="AZURE_CLI_* values from a .env file (repeatable).",
)
@option(
    "--token-cmd-timeout",
    type=Duration(maximum=MAX_DURATION, positive=True),
    default=60.0,
    metavar="DURATION",
    group=SOURCE,
    help="Kill it, or az login, after this (default 60s).",
)
@option("--subscription", type=Identifier("guid", tenant=False), metavar="ID", group=CHECKS, help="Subscription ID.")
@option("--tenant", type=Identifier("tenant", tenant=True), metavar="ID", group=CHECKS, help="Tenant (default: tid).")
@option(
    "--min-validity",
    type=Duration(maximum=MAX_DURATION),
    metavar="DURATION",
    group=CHECKS,
    help="Life left required: 90s, 10m, 1h (15 = 15s).",
)
@option(
    "--audience",
    "audiences",
    envvar="AZEXEC_AUDIENCE",
    multiple=True,
    metavar="AUD",
    group=CHECKS,
    help="Audience required (else non-ARM warns).",
)
@option("--no-verify", is_flag=True, group=CHECKS, help="Skip the JWT checks (opaque tokens).")
@option("--az-login", is_flag=True, group=RUNS, help="Log az in through the identity server.")
@option("--identity-server", is_flag=True, group=RUNS, help="Serve it on 127.0.0.1 as managed identity.")
@option(
    "--listen",
    type=Listener("address", address=True),
    metavar="ADDRESS",
    group=RUNS,
    help="Serve on ADDRESS: docker, podman or an IP (containers).",
)
@option(
    "--advertise",
    type=Listener("name", address=False),
    metavar="NAME",
    group=RUNS,
    help="Give clients NAME for it (docker: host.docker.internal).",
)
@option("--mask", is_flag=True, group=RUNS, help="Replace tokens with *** in COMMAND's output.")
@option("--no-exec", is_flag=True, group=RUNS, help="Stay as COMMAND's parent (no exec).")
@option("--dry-run", is_flag=True, group=OUTPUT, help="Say what would run; run no COMMAND.")
@option("--json", "as_json", envvar="AZEXEC_JSON", is_flag=True, group=OUTPUT, help="With --dry-run: as JSON.")
@option("-q", "--quiet", is_flag=True, group=OUTPUT, help="Print no warnings or notes.")
@click.version_option(package_name="azexec", message="%(prog)s %(version)s", allow_from_autoenv=False)
@option(
    "--man",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    allow_from_autoenv=False,
    callback=lambda ctx, param, value: _man() if value and not ctx.resilient_parsing else None,
    group=OUTPUT,
    help="Show the manual, however azexec was installed.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[--] COMMAND [ARG]...")
def cli(**params: Any) -> None:
    """Run COMMAND with an Azure access token in its environment only.

    azexec reads the token from one source, checks it (decoded, not verified:
    expiry, tenant, audience; a non-ARM audience is a warning unless
    --audience), and runs COMMAND with AZURE_CLI_ACCESS_TOKEN,
    AZURE_CLI_SUBSCRIPTION_ID and AZURE_CLI_TENANT_ID set. It never prints the
    token and writes nothing to disk, except --az-login's private az directory.

    \b
    Which mode fits the tool:
      az (released)         --az-login         az ignores AZURE_CLI_ACCESS_TOKEN
      SDKs, terraform, azd  --identity-server  managed identity; azd's protocol
      a tool reading AZURE_CLI_ACCESS_TOKEN    no mode: azexec becomes COMMAND

    \b
    Examples:
      azexec --az-login --token-cmd "vault kv get -field=token secret/azure" -- az group list
      azexec --identity-server --token-file <(pass show azure/arm) -- terraform plan
      azexec --identity-server --token-cmd "pass show azure/arm" --env-file ids.env -- python app.py
      az account get-access-token -o json | azexec --az-login --token-stdin -- az account show
    """
    from azexec import launch
    from azexec.plan import Request, prepare

    with _exit_status():
        request = Request.from_params(params, _from_environment())
        argv = list(request.command) or ([] if request.dry_run else _shell(request))
        plan = prepare(request, os.environ)
        warn = _ignore if request.quiet else _warn
        # A token the identity server will replace does not expire for COMMAND: nothing to warn of.
        refreshed = request.serving() and plan.source.rereadable()
        for warning in plan.warnings if refreshed else (*plan.warnings, *plan.expiring):
            warn(warning)
        if _is_az(argv) and not request.serving() and not request.dry_run:
            warn(AZ_NOTE)
        env = launch.child_environment(os.environ, plan.variables(), plan.removed)
        if request.dry_run:
            _report(plan, request, argv, env)
            return
        if not request.command and not request.quiet:
            _echo_err(f"starting {argv[0]} with the token set; exit the shell to drop it")
        closed_fds: tuple[int, ...] = click.get_current_context().obj or ()
        # What azexec waits for, on the terminal's line, cleared when done; nothing in a log.
        from azexec.say import note as terminal_note

        note = terminal_note if not request.quiet and os.isatty(2) else _ignore
        launch.start(argv, env, plan, request, closed_fds=closed_fds, warn=warn, diagnose=_echo_err, note=note)


def _variable_names(incomplete: str) -> list[Any]:
    """Complete --token-env with the names of the variables set (completion only: imported then)."""
    from azexec.completion import variable_names

    return list(variable_names(incomplete))


def _man() -> None:
    """Show the manual page shipped inside the package (a checkout's docs/azexec.1), through man: `man azexec`
    finds it only where the installer linked it (pip into a venv, pipx), not after uv tool install."""
    from pathlib import Path

    from azexec import program

    here = Path(__file__).resolve().parent
    page = next((p for p in (here / "azexec.1", here.parent / "docs" / "azexec.1") if p.is_file()), None)
    if page is None:
        failure = _ManFailed("the manual is not installed with this azexec; read docs/azexec.1 in its source")
    else:
        try:
            program.execute(["man", str(page)], dict(os.environ))
        except AzexecError as e:
            hint = f"read it with: nroff -man {page}"
            failure = _ManFailed(f"cannot show {page} with man ({e.message}); {hint}")
    raise failure


class _ManFailed(click.ClickException):
    """The manual cannot be shown: azexec's own failure, as env(1)'s (125)."""

    exit_code = 125


def _is_az(argv: list[str]) -> bool:
    """Tell whether COMMAND is the Azure CLI."""
    return bool(argv) and os.path.basename(argv[0]) == "az"


def _from_environment() -> frozenset[str]:
    """Name the parameters whose value came from an AZEXEC_* variable."""
    ctx = click.get_current_context()
    return frozenset(
        name for name in ctx.params if ctx.get_parameter_source(name) == click.core.ParameterSource.ENVIRONMENT
    )


def _shell(request: Request) -> list[str]:
    """Return the user's shell, the COMMAND when none is given at a terminal.

    With no token source either (`azexec` alone), that is said first, at a terminal or not: the same mistake
    gets the same line wherever it is made.
    """
    from azexec import launch
    from azexec.plan import given_sources, no_source

    if not given_sources(request) and not request.env_files:
        raise no_source()
    if not os.isatty(0):
        raise UsageError("no COMMAND given (a shell starts only when stdin is a terminal)")
    return launch.default_shell(os.environ)


def _report(plan: Plan, request: Request, argv: list[str], env: dict[str, str]) -> None:
    """Print the --dry-run report: what would run, in which mode, with which environment."""
    from azexec import launch, program, report

    found = program.which(argv[0], env) if argv else None
    notes = (AZ_NOTE,) if _is_az(argv) and not request.serving() else ()
    render = report.as_json if request.as_json else report.as_text
    parts = launch.preview(plan, request, env)
    click.echo(render(plan, argv, found, notes=notes, resident=request.resident(), parts=parts, env=env))


@contextlib.contextmanager
def _exit_status() -> Iterator[None]:
    """Translate azexec's errors, once, into a message and env(1)'s exit status."""
    from azexec.errors import Terminated
    from azexec.process import die_of

    try:
        yield
    except UsageError as e:
        raise click.UsageError(str(e)) from None
    except AzexecError as e:
        _echo_err(str(e))
        sys.exit(e.exit_code)
    except Terminated as e:
        die_of(e.signum)
    except KeyboardInterrupt:
        # Die of SIGINT, as a plain program would, so a shell loop or `make -k` stops too.
        _echo_err("interrupted")
        die_of(signal.SIGINT)


def _warn(message: str) -> None:
    _echo_err(f"warning: {message}")


def _ignore(message: str) -> None:
    """Drop a warning (-q)."""


def _echo_err(message: str) -> None:
    """Print one line of azexec's own on stderr, every value in it already redacted and escaped."""
    from azexec.say import line

    click.echo(line(message), err=True)


#: The POSIX modules azexec is built on; Windows' Python has none of them.
POSIX_MODULES = frozenset({"fcntl", "resource", "termios"})


def main() -> None:
    """Run the command line; the console script's entry point.

    On a system without the POSIX modules (Windows), the first import of one
    (resource, before anything else) ends azexec in one line: a check up front
    would cost every run the import of modules most runs never need.
    """
    try:
        _main()
    except ImportError as e:
        if e.name not in POSIX_MODULES:
            raise
        _echo_err("this system is not supported: azexec runs on Linux and macOS; on Windows, run it inside WSL")
        sys.exit(AzexecError.exit_code)


def _main() -> None:
    from azexec import process

    # First of all: a closed stdout must not become the next file azexec opens,
    # and nothing holding a token may dump core.
    closed_fds = process.reserve_standard_fds()
    process.no_core_dumps()
    if "_AZEXEC_COMPLETE" in os.environ:  # a shell asks for completion: bash hands COMMAND's words over
        from azexec import completion

        completion.register()
    try:
        status = cli.main(prog_name="azexec", standalone_mode=False, obj=closed_fds)
    except click.ClickException as e:
        _show_redacted(e)
        sys.exit(e.exit_code)
    except click.Abort:  # EOF or Ctrl-C inside click itself
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def _show_redacted(error: click.ClickException) -> None:
    """Show click's error as azexec's one line plus a hint, every value that may be a secret redacted.

    Click quotes what the user typed ("Invalid value: '<the token>'"); the
    values to look for are this run's arguments and AZEXEC_* variables.
    """
    from azexec.redact import scrub
    from azexec.say import PREFIX

    known = (*sys.argv[1:], *(v for k, v in os.environ.items() if k.startswith("AZEXEC_")))
    message = " ".join(error.format_message().split())
    if isinstance(error, click.UsageError):
        # After a question (click's "Did you mean '--az-login'?") a new sentence, not a semicolon.
        message += " See azexec --help." if message.endswith("?") else "; see azexec --help"
    click.echo(PREFIX + scrub(message, known), err=True)
