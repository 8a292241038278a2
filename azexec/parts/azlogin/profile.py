"""Write what `az login --identity` and `az account set` would write, without running az twice.

Each az process costs about half a second before it does anything; --az-login
ran two before COMMAND's own. What they leave behind is small and stable: the
subscriptions Resource Manager lists, in azureProfile.json (the same bytes from
az 2.45.0 to 2.91.0, tests/test_azlogin.py compares them with what the real az
writes), and the active subscription in clouds.config. azexec asks Resource
Manager for that list itself, with the token az would have used, and writes it.

Whenever it cannot be sure, it says so (None) and az logs in as before: an
unknown or Azure Stack cloud, a proxy, a page of results beyond the first, an
answer it does not expect, a subscription not in the list, or an az whose
release it cannot read.
"""

from __future__ import annotations

import configparser
import glob
import json
import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

#: Resource Manager of the clouds az knows by name.
BUILT_IN_CLOUDS = {
    "AzureCloud": "https://management.azure.com/",
    "AzureChinaCloud": "https://management.chinacloudapi.cn/",
    "AzureUSGovernment": "https://management.usgovcloudapi.net/",
}
#: The resource of az's own token: what az login asks the identity server for.
ARM_RESOURCE = "https://management.core.windows.net/"
#: The Subscriptions - List version az 2.45.0 and later use under the latest profile.
API_VERSION = "2022-12-01"
#: Variables that route az's requests through a proxy: azexec does not guess how az would use them.
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
#: The answer to one listing: more is not a subscription list.
MAX_ANSWER = 4 << 20
#: az's own name for the identity, and its kind, in the profile.
IDENTITY_USER = {"name": "systemAssignedIdentity", "type": "servicePrincipal", "assignedIdentityInfo": "MSI"}


class Cloud(NamedTuple):
    """The active cloud, as az would read it from the copied settings."""

    name: str
    resource_manager: str


def active_cloud(config: str, clouds: str, env: Mapping[str, str]) -> Cloud | None:
    """Return the cloud az would use with CONFIG and CLOUDS (texts), or None when azexec cannot be sure."""
    if any(name.startswith("AZURE_CLOUD_") for name in env):  # az reads [cloud] settings from the environment too
        return None
    parsed_config = _ini(config)
    parsed_clouds = _ini(clouds)
    if parsed_config is None or parsed_clouds is None:
        return None
    name = parsed_config.get("cloud", "name", fallback="AzureCloud")
    section = parsed_clouds[name] if parsed_clouds.has_section(name) else {}
    if section.get("profile", "latest") != "latest":  # Azure Stack's profiles list with other API versions
        return None
    endpoint = section.get("endpoint_resource_manager") or BUILT_IN_CLOUDS.get(name)
    if not endpoint or not endpoint.startswith("https://"):
        return None
    if section.get("endpoint_active_directory_resource_id", ARM_RESOURCE) != ARM_RESOURCE:
        return None
    return Cloud(name, endpoint if endpoint.endswith("/") else endpoint + "/")


def _ini(text: str) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return parser


def az_release(az: str) -> tuple[int, ...] | None:
    """Read the release of the az at path AZ from its installed metadata; None when it cannot be read for sure.

    Two layouts: a Python script (pip, pipx, a venv, Debian's own package: its #! names the Python) and a
    shell wrapper that runs one named Python with -m azure.cli (Microsoft's .deb and Homebrew's packages).
    """
    try:
        with open(os.path.realpath(az), "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    first = head.split("\n", 1)[0]
    found = re.findall(r"(/[^\s'\"]*/bin/python3(?:\.\d+)?)\s+-I?m\s+azure\.cli\b", head)
    if first.startswith("#!") and "python" in first and "azure.cli" in head:
        python = first[2:].split()[0]
    elif len(set(found)) == 1:
        python = found[0]
    else:
        return None
    prefix = os.path.join(os.path.dirname(os.path.dirname(python)), "lib")
    # pip's metadata in a venv's site-packages; Debian's package's in the system Python's dist-packages.
    metadata = [
        *glob.glob(os.path.join(prefix, "python3*", "site-packages", "azure_cli_core-*.dist-info")),
        *glob.glob(os.path.join(prefix, "python3", "dist-packages", "azure_cli_core-*.egg-info")),
    ]
    if len(metadata) != 1:
        return None
    match = re.fullmatch(r"azure_cli_core-(\d+)\.(\d+)\.(\d+)\.(?:dist|egg)-info", os.path.basename(metadata[0]))
    return tuple(int(part) for part in match.groups()) if match else None


def list_subscriptions(cloud: Cloud, token: str, env: Mapping[str, str], timeout: float) -> list[dict[str, Any]] | None:
    """Ask CLOUD's Resource Manager for the subscriptions TOKEN sees; None on any failure or surprise.

    The whole call ends within TIMEOUT (its step's deadline at most), however slowly the answer trickles
    in; a stop signal ends it at once (runner.Step).
    """
    import http.client
    import ssl
    import time
    from urllib.parse import urlsplit

    from azexec import runner

    if any(env.get(name) for name in PROXIES):
        return None
    target = urlsplit(cloud.resource_manager)
    if target.scheme != "https" or not target.hostname:
        return None
    allowed, _ = runner.budget(timeout)
    if allowed <= 0:
        return None
    deadline = time.monotonic() + allowed
    # The CA bundle az itself would use for its requests, when one is named.
    cafile = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None
    try:
        context = ssl.create_default_context(cafile=cafile)
        connection = http.client.HTTPSConnection(target.hostname, target.port, timeout=allowed, context=context)
        try:
            path = f"{target.path.rstrip('/')}/subscriptions?api-version={API_VERSION}"
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            if connection.sock is None:  # pragma: no cover - request() connects
                return None
            connection.sock = runner.Deadlined(connection.sock, deadline)
            response = connection.getresponse()
            body = response.read(MAX_ANSWER + 1)
        finally:
            connection.close()
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError):
        return None
    return parse_listing(response.status, body)


def parse_listing(status: int, body: bytes) -> list[dict[str, Any]] | None:
    """Return the subscriptions in Resource Manager's answer; None for anything but one whole, well-formed page."""
    from azexec.bounded import load_json

    if status != 200:
        return None
    try:
        answer = load_json(body, limit=MAX_ANSWER)
    except ValueError:  # malformed, too large or too deep: az logs in itself
        return None
    if not isinstance(answer, dict) or answer.get("nextLink") or not isinstance(answer.get("value"), list):
        return None
    listed = answer["value"]
    return listed if all(_well_formed(entry) for entry in listed) else None


def _well_formed(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    strings = all(isinstance(entry.get(key), str) for key in ("id", "displayName", "state"))
    tenants = entry.get("managedByTenants")
    return (
        strings
        and isinstance(entry.get("tenantId", ""), (str, type(None)))
        and (tenants is None or (isinstance(tenants, list) and all(isinstance(t, dict) for t in tenants)))
    )


def profile(listed: list[dict[str, Any]], *, tenant: str, cloud: Cloud, subscription: str | None) -> str | None:
    """Return azureProfile.json as az writes it (login, then account set); None when az would fail or differ."""
    if not listed:  # az then makes a tenant-level account: rare, and left to az
        return None
    accounts = [
        {
            "id": entry["id"].rpartition("/")[2],
            "name": entry["displayName"],
            "state": entry["state"],
            "user": dict(IDENTITY_USER),
            "isDefault": False,
            "tenantId": tenant,
            "environmentName": cloud.name,
            "homeTenantId": entry.get("tenantId"),
            "managedByTenants": (
                None
                if entry.get("managedByTenants") is None
                else [{"tenantId": t.get("tenantId")} for t in entry["managedByTenants"]]
            ),
        }
        for entry in listed
    ]
    if subscription is None:
        chosen = next((a for a in accounts if a["state"] == "Enabled"), accounts[0])
    else:
        matches = [a for a in accounts if a["id"].lower() == subscription.lower()]
        if len(matches) != 1:
            return None  # az account set says why
        chosen = matches[0]
    chosen["isDefault"] = True
    return json.dumps({"subscriptions": accounts})


def clouds_config(clouds: str, cloud: Cloud, subscription: str) -> str:
    """Return clouds.config with CLOUD's active subscription set, as az writes it."""
    import io

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(clouds)
    if not parser.has_section(cloud.name):
        parser.add_section(cloud.name)
    parser.set(cloud.name, "subscription", subscription)
    text = io.StringIO()
    parser.write(text)
    return text.getvalue()


def default_subscription(profile_text: str) -> str:
    """Return the id of the default account in PROFILE_TEXT."""
    accounts: list[dict[str, Any]] = json.loads(profile_text)["subscriptions"]
    return str(next(a["id"] for a in accounts if a["isDefault"]))
