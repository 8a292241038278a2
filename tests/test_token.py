"""Format and claim checks on the token itself."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from helpers import ARM, TENANT, make_token, run

from azexec import token
from azexec.errors import TokenRejected
from azexec.redact import Secret

ORIGIN = "--token-file t"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("a" * (64 * 1024 + 1), "longer than 64 KiB"),
        ("Bearer eyJabc.def.ghi", "starts with 'Bearer '"),
        ("eyJabc.de f.ghi", "whitespace or a control character (at character 10 of 15)"),
        ("eyJabc.def\n.ghi", "whitespace or a control character"),
        ("eyJabc.def\r\nX-Evil: 1", "whitespace or a control character"),
        ("eyJabc.def\x00.ghi", "whitespace or a control character"),
        ("eyJabc.def\x7f.ghi", "non-ASCII character"),
        ("\ufeffeyJabc.def.ghi", "non-ASCII character"),
        ("eyJabc.d\u200bef.ghi", "non-ASCII character"),
    ],
)
def test_check_format_refuses(text: str, message: str) -> None:
    """Empty, oversized, prefixed, spaced, control or non-ASCII tokens are refused, naming only a position."""
    with pytest.raises(TokenRejected, match="the access token from --token-file t") as info:
        token.check_format(text, ORIGIN)
    assert message in str(info.value)
    assert "abc" not in str(info.value)


def test_check_format_accepts_64_kib_of_printable_ascii() -> None:
    """The limit is inclusive, and every printable ASCII character is allowed."""
    token.check_format("a" * (64 * 1024), ORIGIN)
    token.check_format("".join(chr(c) for c in range(0x21, 0x7F)), ORIGIN)


def test_decode_reads_the_claims() -> None:
    """Tenant, audience, identity, scopes and expiry come from the payload."""
    tok = make_token(roles=["Reader", 3], appid="04b07795-8ddb-461a-bbee-02f9e1bf7b46", idtyp="user")
    claims = token.decode(tok, ORIGIN)
    assert claims.tenant == TENANT
    assert claims.audiences == (ARM,)
    assert claims.user == "alice@contoso.example"
    assert claims.app == "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    assert claims.roles == ("Reader",)
    assert claims.scopes == ("user_impersonation",)
    assert claims.identity_type == "user"
    assert claims.expires_at > time.time() + 3500


def test_the_policy_refuses_an_expired_token_saying_when() -> None:
    """No leeway on exp: a token one second past is expired, and the message says how long ago."""
    tok = make_token(lifetime=-12 * 60 - 3)
    with pytest.raises(
        TokenRejected, match=r"expired 12 minutes ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); get a fresh one"
    ):
        token.TokenPolicy().accept(Secret(tok, ORIGIN))
    with pytest.raises(TokenRejected, match="expired"):
        token.TokenPolicy().accept(Secret(make_token(lifetime=-1), ORIGIN))


GOOD = make_token()


@pytest.mark.parametrize(
    ("tok", "message"),
    [
        (make_token(drop=("exp",)), "has no expiry"),
        ("opaque-token-without-dots", "is not a JWT"),
        ("a.b.c", "is not a JWT"),
        ("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", r"encrypted \(JWE\)"),
    ],
    ids=["no exp", "opaque", "dotted, not a JWT", "JWE"],
)
def test_a_token_opaque_by_design_is_pointed_to_no_verify(tok: str, message: str) -> None:
    """Opaque or encrypted tokens, and JWTs without exp, are refused with a pointer to --no-verify."""
    with pytest.raises(TokenRejected, match=message) as info:
        token.decode(tok, ORIGIN)
    assert "--no-verify" in str(info.value)


@pytest.mark.parametrize(
    ("tok", "message"),
    [
        (f'"{GOOD}"', "is wrapped in quotes"),
        (f"'{GOOD}'", "is wrapped in quotes"),
        (GOOD.rsplit(".", 1)[0], "has 2 of a JWT's 3 parts: it looks cut short"),
        (GOOD[:-40].rsplit(".", 1)[0][:-7] + "." + "x" * 10, "looks cut short"),
        ("eyJhbGciOiJub25lIn0.bm90IGpzb24.", "its parts do not decode"),
        (make_token(exp="tomorrow"), "has a non-numeric exp claim"),
        (make_token(nbf="soon"), "non-numeric nbf"),
    ],
    ids=["double quotes", "single quotes", "two parts", "truncated", "payload not JSON", "exp a word", "nbf a word"],
)
def test_a_damaged_token_is_diagnosed_and_not_pointed_to_no_verify(tok: str, message: str) -> None:
    """Quotes, a paste cut short, a part that does not decode: said as such; --no-verify would not help."""
    with pytest.raises(TokenRejected, match=message) as info:
        token.decode(tok, ORIGIN)
    assert "--no-verify" not in str(info.value)


def test_decode_with_audience_requires_a_match() -> None:
    """--audience makes a mismatch an error; a trailing slash does not matter."""
    graph = make_token(aud="https://graph.microsoft.com")
    with pytest.raises(
        TokenRejected, match=re.escape("for audience https://graph.microsoft.com, not https://management.azure.com")
    ):
        token.decode(graph, ORIGIN, ["https://management.azure.com"])
    assert token.decode(make_token(), ORIGIN, ["https://management.azure.com"]).audiences == (ARM,)
    assert token.decode(graph, ORIGIN, ["https://graph.microsoft.com/"]).audiences == ("https://graph.microsoft.com",)


def claims_with(**fields: object) -> token.Claims:
    base = token.decode(make_token(), ORIGIN)
    return base._replace(**fields)


def test_check_validity_allows_documented_clock_skew_on_nbf() -> None:
    """nbf up to five minutes ahead passes; further ahead fails naming the clock."""
    now = float(int(time.time()))
    assert token.check_validity(claims_with(not_before=int(now) + 290), None, now) == ()
    with pytest.raises(TokenRejected, match=r"not valid until .* clock-skew allowance\); check this machine's clock"):
        token.check_validity(claims_with(not_before=int(now) + 600), None, now)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(("left", "min_validity"), [(3600, None), (240, 60.0), (3600, 3600.0)])
def test_enough_validity_passes_silently(left: int, min_validity: float | None) -> None:
    """Enough time left (by default, or by --min-validity): no error, no warning."""
    assert token.check_validity(claims_with(expires_at=int(NOW) + left), min_validity, NOW) == ()


def test_under_five_minutes_left_warns_by_default() -> None:
    """Without --min-validity, under 5 minutes left is a warning that says how long."""
    (warning,) = token.check_validity(claims_with(expires_at=int(NOW) + 240), None, NOW)
    assert "expires in 4 minutes" in warning


def test_an_expired_token_fails() -> None:
    """A token past its exp fails, however little."""
    with pytest.raises(TokenRejected, match="expired 5 seconds ago"):
        token.check_validity(claims_with(expires_at=int(NOW) - 5), None, NOW)


def test_less_than_min_validity_fails() -> None:
    """--min-validity 10m with 4 minutes left fails, naming both."""
    with pytest.raises(TokenRejected, match=r"expires in 4 minutes .* less than --min-validity 10 minutes"):
        token.check_validity(claims_with(expires_at=int(NOW) + 240), 600.0, NOW)


@pytest.mark.parametrize(
    "aud",
    [
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.core.windows.net/",
        "https://management.usgovcloudapi.net/",
        "https://management.core.usgovcloudapi.net/",
        "https://management.chinacloudapi.cn",
        "https://management.core.chinacloudapi.cn/",
        "797f4846-ba00-4fd7-ba43-dac1f8f63013",
    ],
)
def test_arm_audiences_do_not_warn(aud: str) -> None:
    """Every ARM audience, with or without the slash, in every cloud, is accepted quietly."""
    assert token.audience_warnings(claims_with(audiences=(aud,)), ()) == ()


def test_other_audiences_warn_unless_audience_given() -> None:
    """A Graph token warns by default; naming --audience silences it."""
    claims = claims_with(audiences=("https://graph.microsoft.com",))
    (warning,) = token.audience_warnings(claims, ())
    assert "not Azure Resource Manager" in warning
    assert token.audience_warnings(claims, ("https://graph.microsoft.com",)) == ()


@pytest.mark.parametrize(
    ("mode", "fails", "way_out"),
    [
        ("env", "so most az commands will fail", "pass --audience to accept it quietly"),
        ("server", "refuses the SDKs Resource Manager", "put {resource} in --token-cmd"),
        ("az", "so az cannot log in with it", "put {resource} in --token-cmd"),
    ],
    ids=["AZURE_CLI_ACCESS_TOKEN", "--identity-server", "--az-login"],
)
def test_the_wrong_audience_warning_fits_the_mode(mode: str, fails: str, way_out: str) -> None:
    """What will fail is what the mode's clients do with the token; the way out is the mode's too."""
    (warning,) = token.audience_warnings(claims_with(audiences=("https://vault.azure.net",)), (), mode)
    assert warning.startswith("the access token is for https://vault.azure.net, not Azure Resource Manager, ")
    assert fails in warning
    assert way_out in warning


def test_the_identity_server_says_its_wrong_audience_warning(tmp_path: Path) -> None:
    """The warning the real azexec prints under --identity-server: about the SDKs, not az."""
    path = tmp_path / "token"
    path.write_text(make_token(aud="https://vault.azure.net"))
    path.chmod(0o600)
    result = run("--identity-server", "--token-file", str(path), "--", "true")
    assert result.returncode == 0
    assert "refuses the SDKs Resource Manager; put {resource} in --token-cmd" in result.stderr
    assert "most az commands" not in result.stderr


def test_every_az_command_azexec_suggests_asks_for_json() -> None:
    """A user whose az config sets table output can run what azexec suggests: every suggestion says -o json."""
    package = Path(token.__file__).parent
    suggested = [
        (source.name, line)
        for source in package.rglob("*.py")
        for line in source.read_text().splitlines()
        if re.search(r"az account get-access-token --resource", line)
    ]
    assert suggested
    assert [found for found in suggested if "-o json" not in found[1]] == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (59, "59 seconds"),
        (150, "2 minutes"),
        (720, "12 minutes"),
        (3 * 3600 + 300, "3 hours 5 minutes"),
        (7200, "2 hours"),
        (5 * 86400, "5 days"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_describe_span(seconds: int, text: str) -> None:
    """Durations read the way a person says them."""
    assert token.describe_span(seconds) == text


@pytest.mark.parametrize(
    ("held", "asked"),
    [
        ("https://management.core.windows.net/", "https://management.azure.com/"),
        ("https://management.azure.com", "https://management.core.windows.net/"),
        ("797f4846-ba00-4fd7-ba43-dac1f8f63013", "https://management.azure.com/"),
        ("https://management.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net"),
    ],
    ids=["az's own resource", "the other way", "ARM's app ID", "US Gov"],
)
def test_audience_takes_every_spelling_of_resource_manager(held: str, asked: str) -> None:
    """--audience names Resource Manager in one spelling; a token with another spelling of it passes."""
    assert token.decode(make_token(aud=held), ORIGIN, (asked,)).audiences == (held,)


def test_audience_does_not_take_resource_manager_of_another_cloud() -> None:
    """The US Government cloud's ARM is not the public cloud's."""
    with pytest.raises(TokenRejected, match=r"not https://management\.azure\.com/"):
        token.decode(
            make_token(aud="https://management.usgovcloudapi.net/"), ORIGIN, ("https://management.azure.com/",)
        )
