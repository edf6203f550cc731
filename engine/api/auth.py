"""Bearer-token authentication: a presented token becomes a Principal, and revocations act at once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from engine.errors import Unauthenticated
from engine.security.principal import Principal
from engine.security.tokens import parse_token, verify_secret
from engine.store.users import UserStore

CALLER: ContextVar[Principal] = ContextVar("caller")


def caller() -> Principal:
    """The authenticated caller of the RPC being served (set by the guard interceptor)."""
    return CALLER.get()


@dataclass(frozen=True, slots=True)
class _Verified:
    digest: bytes
    principal: Principal
    until: float


class Authenticator:
    """Verified tokens are cached briefly, since argon2 costs milliseconds. Tokens revoked through the API
    (RevokeToken, RemoveUser) are remembered, so they fail from the next call on, open streams included;
    a change made behind the daemon's back (straight in the database) is seen within ``cache_seconds``.
    Calls that present the same token while it is being verified wait for that one verification: when the
    cache expires under load, dozens of calls would otherwise each run argon2 at once."""

    def __init__(self, users: UserStore, cache_seconds: float = 5.0) -> None:
        self._users = users
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Verified] = {}
        self._revoked: set[str] = set()
        self._verifying: dict[tuple[str, bytes], asyncio.Task[Principal]] = {}

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise Unauthenticated(
                "missing API token: send the header 'authorization: Bearer <token>' "
                "(the CLI reads --token, TRADEMASTER_TOKEN or the admin token file in the data dir)"
            )
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise Unauthenticated("the authorization header must be 'Bearer <token>'")
        try:
            token_id, secret = parse_token(presented)
        except ValueError as exc:
            raise Unauthenticated(str(exc)) from None
        digest = hashlib.sha256(secret.encode()).digest()
        cached = self._cache.get(token_id)
        if cached is not None and cached.until > time.monotonic() and hmac.compare_digest(cached.digest, digest):
            return cached.principal
        key = (token_id, digest)
        verifying = self._verifying.get(key)
        if verifying is None:
            verifying = self._verifying[key] = asyncio.create_task(self._verify(token_id, secret, digest))
            verifying.add_done_callback(lambda done: self._verified(key, done))
        principal = await asyncio.shield(verifying)  # a caller that goes away does not cancel the others' answer
        self.check(token_id)  # revoked after the shared verification finished, before this call got its answer
        return principal

    def _verified(self, key: tuple[str, bytes], done: asyncio.Task[Principal]) -> None:
        del self._verifying[key]
        if not done.cancelled():
            done.exception()  # retrieved here: every waiter may have gone away

    async def _verify(self, token_id: str, secret: str, digest: bytes) -> Principal:
        owner = await self._users.owner(token_id)
        if owner is None:
            raise Unauthenticated(f"API token {token_id} is unknown or revoked")
        if not await asyncio.to_thread(verify_secret, owner.secret_hash, secret):
            raise Unauthenticated(f"API token {token_id}: wrong secret")
        self.check(token_id)  # revoked while its row was being verified: never cache it
        user = owner.user
        principal = Principal(user.name, user.role, token_id, frozenset(user.accounts))
        self._cache[token_id] = _Verified(digest, principal, time.monotonic() + self._cache_seconds)
        return principal

    def check(self, token_id: str) -> None:
        """Raise if the token was revoked through the API since it was verified."""
        if token_id in self._revoked:
            raise Unauthenticated(f"API token {token_id} was revoked")

    def revoke(self, token_ids: Iterable[str]) -> None:
        for token_id in token_ids:
            self._revoked.add(token_id)
            self._cache.pop(token_id, None)
