"""Which resource a token serves: normalised spellings, and Azure Resource Manager in each cloud."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from azexec.ids import is_guid

#: The Azure Resource Manager application, the same in every cloud.
ARM_APP_ID = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
#: Azure Resource Manager's spellings, one set per cloud.
ARM_BY_CLOUD = (
    frozenset({"https://management.azure.com", "https://management.core.windows.net"}),
    frozenset({"https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net"}),
    frozenset({"https://management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn"}),
)
#: Every spelling of ARM, in any cloud.
ARM_AUDIENCES = frozenset().union(*ARM_BY_CLOUD, {ARM_APP_ID})
#: What a token command with {resource} is first run for: the resource az itself asks for.
DEFAULT_RESOURCE = "https://management.core.windows.net/"


#: The longest resource a client may ask for; real ones are a URI or a GUID, well under this.
MAX_RESOURCE = 512
#: The grammar of a resource that is a URI: https:// or api://, a host (letters, digits, dots, hyphens), an
#: optional port, and a path of letters, digits and `- . _ / : % @ + , =`. Nothing a shell treats specially
#: (quotes, whitespace, backslash, $ ` ; | & < > ( ) { } [ ] * ? ! # ~): a token command may be a shell snippet.
#: A pattern, not a compiled object: compiled on first use (re caches it), not at start-up.
_URI = r"(?i:https|api)://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[A-Za-z0-9._/%:@+,=-]*)?"
#: The rule, as a refusal states it.
RULE = (
    "a resource must be an https:// or api:// URI of letters, digits and - . _ / : % @ + , = "
    "(no quotes, spaces or shell characters), or an application ID (a GUID)"
)


@functools.lru_cache(maxsize=256)
def invalid(resource: str) -> str | None:
    """Say why RESOURCE is not one a client may ask for, or None when it is.

    It reaches a token command as an argument, and as text inside a shell snippet
    (`sh -c '… {resource}'`): only the strict grammar of _URI, or a GUID, passes.
    """
    if len(resource) > MAX_RESOURCE:
        return f"the resource is longer than {MAX_RESOURCE} characters"
    if is_guid(resource) or re.fullmatch(_URI, resource):
        return None
    return RULE


def normalize(resource: str) -> str:
    """Return RESOURCE without /.default, a trailing slash, or case in its scheme and host."""
    text = resource.strip()
    text = text.removesuffix("/.default")
    text = text.rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text.lower() if is_guid(text) else text
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def spellings(resource: str) -> set[str]:
    """Return every spelling of RESOURCE a token's aud claim may hold: with and without a trailing slash,
    and, for Azure Resource Manager, each of its names in the same cloud (all clouds for its app ID)."""
    normal = normalize(resource)
    cloud = _arm_cloud(normal)
    if cloud is None:
        names = {normal}
    elif cloud == -1:
        names = set(ARM_AUDIENCES)
    else:
        names = {*ARM_BY_CLOUD[cloud], ARM_APP_ID}
    return {resource} | names | {name + "/" for name in names if "://" in name}


def is_arm(resource: str) -> bool:
    """Tell whether RESOURCE is Azure Resource Manager, in any cloud."""
    return normalize(resource) in ARM_AUDIENCES


def same_resource(held: str, requested: str) -> bool:
    """Tell whether a token for HELD serves REQUESTED: the same resource, or ARM in the same cloud.

    The ARM application ID names no cloud, so it matches ARM in any.
    """
    a, b = normalize(held), normalize(requested)
    if a == b:
        return True
    cloud_a, cloud_b = _arm_cloud(a), _arm_cloud(b)
    if cloud_a is None or cloud_b is None:
        return False
    return cloud_a == cloud_b or -1 in (cloud_a, cloud_b)


def _arm_cloud(normalized: str) -> int | None:
    """Return the index of the cloud whose ARM this is (-1: the app ID, any cloud), or None."""
    if normalized == ARM_APP_ID:
        return -1
    return next((i for i, cloud in enumerate(ARM_BY_CLOUD) if normalized in cloud), None)


def serves(audiences: Sequence[str] | None, requested: str) -> bool:
    """Tell whether a token with AUDIENCES serves REQUESTED; unknown audiences (--no-verify) serve ARM only."""
    if audiences is None:
        return is_arm(requested)
    return any(same_resource(audience, requested) for audience in audiences)
