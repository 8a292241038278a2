"""Hostile requests and answers: a resource never reaches a shell, nothing parsed from outside ends in a traceback.

Whoever holds IDENTITY_HEADER (COMMAND's children; every container given it under
--listen) chooses the resource a token command is run for, and a token command may
be a shell snippet (`sh -c '…'`, as --token-cmd's own usage error advises). These
tests run a real `sh -c` template and send every character a shell treats
specially, through each protocol the identity server speaks.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import pytest
from helpers import (
    MINT,
    TENANT,
    Terminal,
    base_env,
    claims_of,
    explain,
    held,
    make_token,
    run,
    start_part,
    write_private,
)

from azexec import resources, sources
from azexec.parts.identity import IdentityServer

TOKEN = make_token(lifetime=7200)
VAULT = "https://vault.azure.net"

#: Characters a POSIX shell treats specially, each inside an otherwise good resource.
SHELL_CHARACTERS = [
    "$", "`", ";", "|", "&", "<", ">", "(", ")", "{", "}", "[", "]", "*", "?", "!", "#", "~",
    "'", '"', "\\", " ", "\t", "\n",
]  # fmt: skip


def _payloads(marker: Path) -> dict[str, str]:
    """Resources that, put into `sh -c '… {resource} …'`, would create MARKER: the attacks the issue names."""
    touch = f"touch${{IFS}}{marker}"
    return {
        "$( )": f"{VAULT}/$({touch})",
        "backquotes": f"{VAULT}/`{touch}`",
        "semicolon": f"{VAULT}/;{touch}",
        "pipe": f"{VAULT}/|{touch}",
        "ampersand": f"{VAULT}/&{touch}",
        "redirection": f"{VAULT}/>{marker}",
        "quote break": f"{VAULT}/';{touch};'",
        "newline": f"{VAULT}/\n{touch}",
        **{f"{char!r}": f"{VAULT}/a{char}b" for char in SHELL_CHARACTERS},
    }


class Shelled(NamedTuple):
    """An identity server whose token command is a shell snippet, and what COMMAND was told."""

    part: IdentityServer
    env: dict[str, str]
    count: Path
    marker: Path


def _shell_snippet(tmp_path: Path, argument: str) -> str:
    """A --token-cmd that runs MINT through sh -c, with ARGUMENT where the resource goes."""
    script = write_private(tmp_path / "mint.py", MINT)
    return f"sh -c 'exec {sys.executable} {script} {argument} {tmp_path / 'count'} 3600 60'"


@pytest.fixture(params=["{resource}", '"$AZEXEC_RESOURCE"'], ids=["text substitution", "environment"])
def shelled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shelled]:
    """A started server whose token command is `sh -c '… {resource} …'` or `sh -c '… "$AZEXEC_RESOURCE" …'`."""
    command = sources.Command(_shell_snippet(tmp_path, request.param), timeout=30, label="--token-cmd")
    part = IdentityServer(held(TOKEN, source=command), tenant=TENANT, subscription=None)
    env = start_part(part)
    part.offer_legacy()  # the 2017 protocol too, as --az-login offers it to an older az
    try:
        yield Shelled(part, env, tmp_path / "count", tmp_path / "pwned")
    finally:
        part.stop(0)


def _ask(shelled: Shelled, protocol: str, resource: str) -> tuple[int, dict[str, str]]:
    """Ask for RESOURCE through PROTOCOL as its clients do; return the status and the JSON body."""
    server = shelled.part.server
    assert server is not None
    query = f"?api-version=2019-08-01&resource={quote(resource, safe='')}"
    if protocol == "App Service":
        url, headers = shelled.env["IDENTITY_ENDPOINT"], {"X-IDENTITY-HEADER": shelled.env["IDENTITY_HEADER"]}
    elif protocol == "IMDS":
        url, headers = shelled.env["ARM_MSI_ENDPOINT"], {"Metadata": "true"}
    elif protocol == "azd":
        return _ask_as_azd(shelled, resource)
    else:
        url, headers = server.base + server.legacy.path + "/", {"secret": server.legacy.secret}
        query = query.replace("2019-08-01", "2017-09-01")
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
    try:
        connection.request("GET", parts.path + query, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _ask_as_azd(shelled: Shelled, resource: str) -> tuple[int, dict[str, str]]:
    """Ask as azd does, for RESOURCE's scope; its answer as a managed-identity client's: a status "error" as a 400."""
    parts = urlsplit(shelled.env["AZD_AUTH_ENDPOINT"])
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
    try:
        connection.request(
            "POST",
            parts.path + "/token?api-version=2023-07-12-preview",
            body=json.dumps({"scopes": [resource + "/.default"]}),
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + shelled.env["AZD_AUTH_KEY"]},
        )
        response = connection.getresponse()
        assert response.status == 200  # azd reads every answer it understands from a 200
        answer = json.loads(response.read())
    finally:
        connection.close()
    if answer["status"] == "error":
        return 400, {"message": answer["message"]}
    return 200, {"access_token": answer["token"]}


PROTOCOLS = ["App Service", "IMDS", "App Service 2017", "azd"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_resource_with_a_shell_character_reaches_a_shell_snippet(shelled: Shelled, protocol: str) -> None:
    """Every shell metacharacter, and each attack built of them: a 400 naming the rule; the command never runs."""
    for name, resource in _payloads(shelled.marker).items():
        status, body = _ask(shelled, protocol, resource)
        assert status == 400, (name, body)
        assert "no quotes, spaces or shell characters" in body["message"], (name, body)
    assert not shelled.marker.exists()
    assert not shelled.count.exists()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_shell_snippet_serves_a_good_resource(shelled: Shelled, protocol: str) -> None:
    """The same snippet, asked for Key Vault: it runs once, for Key Vault, and the token is served."""
    status, body = _ask(shelled, protocol, VAULT)
    assert status == 200, body
    assert claims_of(body["access_token"])["aud"] == VAULT
    assert shelled.count.read_text() == VAULT + "\n"


GOOD = [
    "https://management.azure.com/",
    "https://management.core.windows.net/",
    "HTTPS://Management.Azure.COM/.default",
    "https://management.azure.com:443/",
    "https://vault.azure.net",
    "https://storage.azure.com/.default",
    "https://database.windows.net//.default",
    "https://ossrdbms-aad.database.windows.net",
    "https://cognitiveservices.azure.com/.default",
    "https://graph.microsoft.com/",
    "api://contoso.example/app-1",
    "api://11111111-2222-4333-8444-555555555555/.default",
    "797f4846-ba00-4fd7-ba43-dac1f8f63013",
    "https://contoso.example/a_b/c%20d/e@f+g,h=i:j",
]


@pytest.mark.parametrize("resource", GOOD)
def test_the_grammar_takes_every_real_resource(resource: str) -> None:
    """Azure's resources and scopes, app ID URIs and GUIDs pass."""
    assert resources.invalid(resource) is None


BAD = [
    "http://vault.azure.net",
    "ftp://vault.azure.net",
    "https://",
    "https://-vault.azure.net",
    "https://vault.azure.net:99999999/",
    "https://user:pw@vault.azure.net",
    "https://vault.azure.net/?x=1",
    "https://vault.azure.net/#x",
    "https://vault.azure.net/\u00e9",
    "vault",
    "-o tsv",
    "{11111111-2222-4333-8444-555555555555}",
]


@pytest.mark.parametrize("resource", BAD)
def test_the_grammar_refuses_anything_else(resource: str) -> None:
    """Another scheme, no host, a bad host or port, a query, a fragment, non-ASCII, a word, an option."""
    assert resources.invalid(resource) == resources.RULE


def test_a_token_command_refuses_a_bad_resource_whoever_asks() -> None:
    """The check stands in tokencmd too: an --audience typed with shell characters never reaches sh -c."""
    from azexec.errors import TokenSourceError
    from azexec.tokencmd import split

    with pytest.raises(TokenSourceError, match="is not a resource it may be run for"):
        split("sh -c 'echo {resource}'", f"{VAULT}/;id")


def test_the_resource_reaches_every_token_command_in_its_environment(tmp_path: Path) -> None:
    """AZEXEC_RESOURCE holds the resource, for the first run too (the default: what az asks for)."""
    command = sources.Command(f"sh -c 'printf %s \"$AZEXEC_RESOURCE\" > {tmp_path / 'seen'}; exit 1'", timeout=30,
                              label="--token-cmd")  # fmt: skip
    with pytest.raises(Exception, match="exited with status 1"):
        command.read()
    assert (tmp_path / "seen").read_text() == resources.DEFAULT_RESOURCE
    assert command.per_resource()


def test_the_usage_error_shows_the_environment_form() -> None:
    """Shell syntax without sh -c: the hint wraps it in sh -c and quotes "$AZEXEC_RESOURCE"."""
    from azexec.errors import UsageError
    from azexec.tokencmd import split

    with pytest.raises(UsageError) as caught:
        split("az account get-access-token --resource {resource} | jq -r .accessToken", "r")
    assert caught.value.hint is not None
    assert """--token-cmd "sh -c '… \\"\\$AZEXEC_RESOURCE\\" …'\"""" in caught.value.hint


# --mask hides every secret azexec hands out, not only tokens.


def test_mask_hides_the_header_and_the_secret_paths() -> None:
    """`echo $IDENTITY_HEADER $IDENTITY_ENDPOINT $ARM_MSI_ENDPOINT` under --mask: the header and both paths masked."""
    script = 'echo "$IDENTITY_HEADER" "$IDENTITY_ENDPOINT" "$ARM_MSI_ENDPOINT"'
    done = run("-q", "--mask", "--identity-server", "--token-env", "T", "--", "sh", "-c", script,
               env=base_env(T=TOKEN))  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert re.fullmatch(r"\*\*\* http://127\.0\.0\.1:\d+/\*\*\* http://127\.0\.0\.1:\d+/\*\*\*\n", done.stdout), (
        done.stdout
    )


def test_mask_hides_the_2017_protocols_path_and_secret() -> None:
    """What --az-login offers an older az (MSI_ENDPOINT, MSI_SECRET) is masked too."""
    import signal
    from types import MappingProxyType

    from azexec.parts import Context, Secrets

    secrets = Secrets()

    def fail(error: Exception) -> None:
        raise AssertionError(error)

    part = IdentityServer(held(TOKEN), tenant=TENANT, subscription=None)
    mask = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, set()))
    part.start(Context(MappingProxyType({}), mask, (), fail, secrets))
    try:
        offered = part.offer_legacy()
    finally:
        part.stop(0)
    said = f"{offered['MSI_ENDPOINT']} {offered['MSI_SECRET']}".encode()
    assert re.fullmatch(rb"http://127\.0\.0\.1:\d+/\*\*\* \*\*\*", secrets.mask(said)), said


# The first token command's stderr under --mask: masked in a log, untouched at a terminal.


def _loud_command(tmp_path: Path, then: str) -> str:
    """A token command that prints its token on stderr (az --debug does), then does THEN."""
    path = write_private(tmp_path / "token", TOKEN)
    return f"sh -c 'echo \"debug: token $(cat {path})\" >&2; {then}'"


def test_mask_masks_the_first_token_commands_stderr_in_a_log(tmp_path: Path) -> None:
    """--mask, stderr a pipe: what the token command says on stderr comes through, its token masked."""
    token_cmd = _loud_command(tmp_path, f"cat {tmp_path / 'token'}")
    done = run("--mask", "--token-cmd", token_cmd, "--", "true")
    assert done.returncode == 0, explain(done)
    assert "debug: token ***\n" in done.stderr
    assert TOKEN not in done.stderr


def test_mask_masks_a_failing_first_token_commands_stderr(tmp_path: Path) -> None:
    """It fails after printing a token on stderr: its message comes through masked, then azexec's line; 125."""
    done = run("--mask", "--token-cmd", _loud_command(tmp_path, "exit 3"), "--", "true")
    assert done.returncode == 125, explain(done)
    assert done.stderr.startswith("debug: token ***\n"), done.stderr
    assert "--token-cmd failed: sh exited with status 3" in done.stderr
    assert TOKEN not in done.stderr


def test_without_mask_the_first_token_commands_stderr_passes_straight(tmp_path: Path) -> None:
    """No --mask: its stderr is the user's own, untouched, as before."""
    done = run("--token-cmd", _loud_command(tmp_path, f"cat {tmp_path / 'token'}"), "--", "true")
    assert done.returncode == 0, explain(done)
    assert f"debug: token {TOKEN}\n" in done.stderr


def test_mask_keeps_a_prompt_at_a_terminal_as_it_was(tmp_path: Path, terminal: Callable[..., Terminal]) -> None:
    """--mask at a terminal: the token command's prompt shows at once, before it has read anything."""
    path = write_private(tmp_path / "token", TOKEN)
    token_cmd = f'sh -c \'printf "PIN: " >&2; read pin; test "$pin" = 1234 && cat {path}\''
    term = terminal(["--mask", "--token-cmd", token_cmd, "--", "true"], base_env())
    term.expect("PIN: ")
    term.send("1234\n")
    assert term.finish() == 0, term.output
