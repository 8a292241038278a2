"""Recognise subscription and tenant identifiers."""

from __future__ import annotations

import re

# Patterns, not compiled objects: compiled on first use (re caches them), not at start-up.

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_DOMAIN = r"(?=.{4,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"


def is_guid(value: str) -> bool:
    """Tell whether VALUE is a GUID such as a subscription or tenant ID."""
    return re.fullmatch(_GUID, value) is not None


def is_tenant(value: str) -> bool:
    """Tell whether VALUE is a tenant GUID or a domain such as contoso.onmicrosoft.com."""
    return is_guid(value) or re.fullmatch(_DOMAIN, value) is not None
