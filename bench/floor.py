"""The design floor: only what azexec's design cannot avoid, and nothing else.

Import click and parse, read the token (a file, or a .env file through
python-dotenv), jwt.decode with the exp check, os.execvpe. bench/startup.py
times azexec against this program; tests/test_startup.py compares imports.
"""

import os

import click
import jwt


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-q", "--quiet", is_flag=True)
@click.option("--token-file")
@click.option("--env-file")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def main(quiet: bool, token_file: str | None, env_file: str | None, command: tuple[str, ...]) -> None:
    if env_file:
        from dotenv import dotenv_values

        token = dotenv_values(env_file)["AZURE_CLI_ACCESS_TOKEN"] or ""
    else:
        with open(str(token_file)) as f:
            token = f.read().strip()
    jwt.decode(token, options={"verify_signature": False, "verify_exp": True, "require": ["exp"]})
    os.execvpe(command[0], list(command), dict(os.environ, AZURE_CLI_ACCESS_TOKEN=token))


main()
