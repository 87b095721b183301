"""Bearer-token auth for a cloud ComfyUI (ComfyUI itself has none)."""
from __future__ import annotations

import hmac


def check_authorization(header: str | None, token: str) -> int | None:
    """-> None when allowed, else the HTTP status to answer (401 missing, 403 wrong)."""
    if not header:
        return 401
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return 401
    return None if hmac.compare_digest(value.strip().encode(), token.encode()) else 403
