"""The design floor: only what azexec's design cannot avoid, and nothing else.

Import click and parse, read the token file, jwt.decode with the exp check,
os.execvpe. bench/startup.py times azexec against this program.
"""

import os

import click
import jwt


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-q", "--quiet", is_flag=True)
@click.option("--token-file", required=True)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def main(quiet: bool, token_file: str, command: tuple[str, ...]) -> None:
    with open(token_file) as f:
        token = f.read().strip()
    jwt.decode(token, options={"verify_signature": False, "verify_exp": True, "require": ["exp"]})
    os.execvpe(command[0], list(command), dict(os.environ, AZURE_CLI_ACCESS_TOKEN=token))


main()
