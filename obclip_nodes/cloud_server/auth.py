"""Who is asking: bearer tokens of a cloud's tenants (ComfyUI itself has no authentication).

Two roles. The **operator** sees and may do everything ComfyUI serves. A **client** may use only the
routes an ObCLIP client needs, and sees only its own prompts (tenants.py filters the rest).
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

OPERATOR, CLIENT = "operator", "client"


@dataclass(frozen=True)
class Principal:
    role: str
    name: str

    @property
    def is_client(self) -> bool:
        return self.role == CLIENT


# Without auth (no token configured) every caller is the operator of its own private server.
ANONYMOUS = Principal(OPERATOR, "anonymous")


def check_authorization(header: str | None, token: str) -> int | None:
    """-> None when allowed, else the HTTP status to answer (401 missing, 403 wrong)."""
    status, _ = identify(header, {token: (OPERATOR, OPERATOR)})
    return status


def identify(header: str | None, tenants: dict) -> tuple[int | None, Principal | None]:
    """tenants: token -> (role, name). -> (None, principal) when allowed, else (401 or 403, None).

    Every configured token is compared in constant time, so the answer's timing does not tell which
    tenant's token a guess came close to."""
    if not header:
        return 401, None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return 401, None
    found = None
    for token, (role, name) in tenants.items():
        if hmac.compare_digest(value.encode(), token.encode()):
            found = Principal(role, name)
    return (None, found) if found else (403, None)
