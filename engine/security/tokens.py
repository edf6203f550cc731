"""API tokens: ``tm_<token_id>_<secret>``, stored as (token_id, argon2 hash of secret, role).

The token id is not secret; it finds the row, so verification costs one hash rather than one per stored
token. The secret carries 256 bits from ``secrets``, so no hash setting is what stops guessing it; the
argon2 hash is there so a leaked database does not hand out working tokens.

Hash parameters: argon2id, time_cost=1, memory_cost=8 MiB, parallelism=1 verifies in about 4 ms on
one core. Verification runs on each new connection or first call, and every request with an unknown
token costs one, so it must stay cheap: the RFC 9106 password settings (64 MiB, t=3, ~170 ms) would
let a client flood the server with bad tokens. Callers cache tokens they have verified.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

PREFIX = "tm_"
TOKEN_ID_HEX = 12  # 48 random bits: unique enough to find a row; the insert still relies on a unique key
SECRET_BYTES = 32  # 256 bits, token_urlsafe renders them as 43 characters
_SECRET_CHARS = 43
_TOKEN_ID = re.compile(rf"[0-9a-f]{{{TOKEN_ID_HEX}}}")
_SECRET = re.compile(rf"[A-Za-z0-9_-]{{{_SECRET_CHARS}}}")
_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


class Role(StrEnum):
    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    def allows(self, required: Role) -> bool:
        """Roles nest (admin ⊇ trader ⊇ viewer), so one comparison decides every permission check."""
        return _RANK[self] >= _RANK[required]


_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.ADMIN: 2}


def new_token() -> tuple[str, str]:
    """A new (token_id, secret); the user is shown ``format_token(token_id, secret)`` once, we keep a hash."""
    return secrets.token_hex(TOKEN_ID_HEX // 2), secrets.token_urlsafe(SECRET_BYTES)


def format_token(token_id: str, secret: str) -> str:
    return f"{PREFIX}{token_id}_{secret}"


def parse_token(text: str) -> tuple[str, str]:
    """Split a presented token into (token_id, secret); messages never echo the secret."""
    text = text.strip()
    if not text.startswith(PREFIX):
        raise ValueError(f"malformed API token: it must start with {PREFIX!r}")
    token_id, sep, secret = text[len(PREFIX) :].partition("_")
    if not sep:
        raise ValueError("malformed API token: expected tm_<token id>_<secret>")
    if not _TOKEN_ID.fullmatch(token_id):
        raise ValueError(f"malformed API token: the token id must be {TOKEN_ID_HEX} lowercase hex characters")
    if not _SECRET.fullmatch(secret):
        raise ValueError(f"malformed API token: the secret must be {_SECRET_CHARS} characters of A-Z a-z 0-9 _ -")
    return token_id, secret


def hash_secret(secret: str) -> str:
    """An argon2id hash in PHC format; it records its parameters, so old hashes verify after a change."""
    return _HASHER.hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    """False for a wrong secret; a stored hash that is not argon2 raises InvalidHashError (a ValueError)."""
    try:
        return _HASHER.verify(stored_hash, secret)
    except VerificationError:
        return False
