"""When azexec writes az's profile itself, and when it leaves the login to az (every doubt is a fallback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azexec.parts.azlogin import profile as azprofile
from azexec.parts.azlogin.profile import Cloud

CUSTOM = "[Fake]\nendpoint_resource_manager = https://arm.fake.test/\n"
ACTIVE_FAKE = "[cloud]\nname = Fake\n"
TENANT = "00000000-0000-4000-8000-000000000001"
FAKE = Cloud("Fake", "https://arm.fake.test/")


def test_the_default_cloud_is_azure_with_its_resource_manager() -> None:
    assert azprofile.active_cloud("", "", {}) == Cloud("AzureCloud", "https://management.azure.com/")


def test_a_registered_cloud_is_read_from_clouds_config() -> None:
    assert azprofile.active_cloud(ACTIVE_FAKE, CUSTOM, {}) == FAKE


@pytest.mark.parametrize(
    ("config", "clouds", "env"),
    [
        ("[cloud]\nname = Unknown\n", "", {}),
        (ACTIVE_FAKE, CUSTOM + "profile = 2019-03-01-hybrid\n", {}),
        (ACTIVE_FAKE, "[Fake]\nendpoint_resource_manager = http://arm.fake.test/\n", {}),
        (ACTIVE_FAKE, CUSTOM + "endpoint_active_directory_resource_id = https://other/\n", {}),
        ("", "", {"AZURE_CLOUD_NAME": "AzureChinaCloud"}),
        ("[cloud\n", "", {}),
    ],
    ids=["unknown cloud", "Azure Stack profile", "plain http", "other ARM resource", "cloud from env", "bad config"],
)
def test_any_doubt_about_the_cloud_leaves_the_login_to_az(config: str, clouds: str, env: dict[str, str]) -> None:
    assert azprofile.active_cloud(config, clouds, env) is None


def _entry(sid: str, state: str = "Enabled") -> dict[str, object]:
    return {"id": f"/subscriptions/{sid}", "displayName": sid, "state": state, "tenantId": TENANT}


def test_the_first_enabled_subscription_is_the_default_as_az_picks_it() -> None:
    text = azprofile.profile([_entry("a", "Disabled"), _entry("b")], tenant=TENANT, cloud=FAKE, subscription=None)
    assert text is not None
    assert [(a["id"], a["isDefault"]) for a in json.loads(text)["subscriptions"]] == [("a", False), ("b", True)]


@pytest.mark.parametrize(("listed", "subscription"), [([], None), ([_entry("a")], "b")], ids=["none", "not listed"])
def test_no_subscription_or_one_not_listed_leaves_it_to_az(listed: list[dict[str, object]], subscription: str) -> None:
    """az makes a tenant-level account, or az account set says the subscription is not there."""
    assert azprofile.profile(listed, tenant=TENANT, cloud=FAKE, subscription=subscription) is None


def test_one_whole_page_is_read() -> None:
    assert azprofile.parse_listing(200, json.dumps({"value": [_entry("a")]}).encode()) == [_entry("a")]


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, {"value": [_entry("a")], "nextLink": "https://arm.fake.test/subscriptions?page=2"}),
        (401, {"error": {"code": "InvalidAuthenticationToken"}}),
        (200, {"value": [{"id": 1}]}),
        (200, {"value": "nope"}),
        (200, ["not", "an", "object"]),
    ],
    ids=["a second page", "refused", "malformed entry", "malformed list", "not an object"],
)
def test_anything_but_one_whole_well_formed_page_leaves_the_login_to_az(status: int, answer: object) -> None:
    assert azprofile.parse_listing(status, json.dumps(answer).encode()) is None


@pytest.mark.parametrize(
    "body",
    [b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"value": [' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"]}"],
    ids=["deeper than the interpreter's stack", "deeper than a listing can be"],
)
def test_a_listing_nested_too_deep_leaves_the_login_to_az(body: bytes) -> None:
    """No RecursionError: JSON from Resource Manager is bounded in depth, as in size."""
    assert azprofile.parse_listing(200, body) is None


def test_a_proxy_leaves_the_login_to_az() -> None:
    assert azprofile.list_subscriptions(FAKE, "token", {"HTTPS_PROXY": "http://proxy:3128"}, 5) is None


def _script(tmp_path: Path, text: str, release: str | None) -> str:
    """An az at TMP_PATH/prefix/bin/az with TEXT (PYTHON stands for the prefix's python), and its dist-info."""
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    site = prefix / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if release is not None:
        (site / f"azure_cli_core-{release}.dist-info").mkdir()
    az = prefix / "bin" / "az"
    az.write_text(text.replace("PYTHON", str(prefix / "bin" / "python3")))
    return str(az)


PIP_SCRIPT = "#!PYTHON\nimport os, sys\nos.execl(sys.executable, sys.executable, '-m', 'azure.cli', *sys.argv[1:])\n"
DEB_SCRIPT = '#!/usr/bin/env bash\nAZ_INSTALLER=DEB PYTHON -Im azure.cli "$@"\n'


@pytest.mark.parametrize("text", [PIP_SCRIPT, DEB_SCRIPT], ids=["pip script", "shell wrapper"])
def test_the_release_is_read_from_the_installed_metadata(tmp_path: Path, text: str) -> None:
    assert azprofile.az_release(_script(tmp_path, text, "2.72.0")) == (2, 72, 0)


def test_the_release_of_debians_own_package_is_read_from_its_egg_info(tmp_path: Path) -> None:
    """Debian's azure-cli: a Python script run by /usr/bin/python3, its metadata in dist-packages as egg-info."""
    prefix = tmp_path / "usr"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib" / "python3" / "dist-packages" / "azure_cli_core-2.45.0.egg-info").mkdir(parents=True)
    az = prefix / "bin" / "az"
    az.write_text(f"#!{prefix}/bin/python3\nimport runpy\nrunpy.run_module('azure.cli')\n")
    assert azprofile.az_release(str(az)) == (2, 45, 0)


def test_the_release_of_the_az_debian_installs_is_read() -> None:
    """The real /usr/bin/az of Debian's package (scripts/install-test-tools installs it)."""
    assert azprofile.az_release("/usr/bin/az") == (2, 45, 0)


@pytest.mark.parametrize(
    ("text", "release"),
    [(PIP_SCRIPT, None), ('#!/bin/sh\nexec docker run azure-cli az "$@"\n', "2.72.0")],
    ids=["no metadata", "unknown layout"],
)
def test_an_unreadable_release_leaves_the_login_to_az(tmp_path: Path, text: str, release: str | None) -> None:
    assert azprofile.az_release(_script(tmp_path, text, release)) is None
