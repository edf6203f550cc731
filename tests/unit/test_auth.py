"""Authentication and its parts, without a server: token checks and caching, rate limits, audit detail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from engine.api.auth import Authenticator
from engine.api.guard import _detail, _target
from engine.errors import PermissionDenied, Unauthenticated
from engine.security.principal import Principal
from engine.security.rate_limit import RateLimiter
from engine.security.tokens import Role, format_token, hash_secret, new_token
from engine.store.users import TokenOwner, User
from trademaster.v1 import accounts_pb2, orders_pb2

NOW = datetime(2026, 11, 20, tzinfo=UTC)


class FakeUsers:
    """Just what Authenticator reads; counts reads to show the cache at work."""

    def __init__(self) -> None:
        self.rows: dict[str, TokenOwner] = {}
        self.reads = 0

    def issue(self, user: User) -> str:
        token_id, secret = new_token()
        self.rows[token_id] = TokenOwner(hash_secret(secret), user)
        return format_token(token_id, secret)

    async def owner(self, token_id: str) -> TokenOwner | None:
        self.reads += 1
        return self.rows.get(token_id)


@pytest.fixture
def users() -> FakeUsers:
    return FakeUsers()


TOM = User("tom", Role.TRADER, ("alpha",), NOW)


async def test_a_good_token_is_the_user_with_their_accounts(users: FakeUsers) -> None:
    auth = Authenticator(users)  # type: ignore[arg-type]
    token = users.issue(TOM)
    me = await auth.authenticate(f"Bearer {token}")
    assert (me.user, me.role, me.accounts) == ("tom", Role.TRADER, frozenset({"alpha"}))
    assert me.label == f"tom (token {me.token_id})"
    assert await auth.authenticate(f"bearer {token}") == me
    assert users.reads == 1  # the second call was served from the cache


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing API token"),
        ("", "missing API token"),
        ("Basic abc", "must be 'Bearer <token>'"),
        ("Bearer nope", "malformed API token"),
        ("Bearer tm_0123456789ab_" + "A" * 43, "unknown or revoked"),
    ],
)
async def test_bad_headers_are_unauthenticated_and_say_why(users: FakeUsers, header: str | None, message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        await Authenticator(users).authenticate(header)  # type: ignore[arg-type]


async def test_a_wrong_secret_is_refused_even_when_the_right_one_is_cached(users: FakeUsers) -> None:
    auth = Authenticator(users)  # type: ignore[arg-type]
    token = users.issue(TOM)
    await auth.authenticate(f"Bearer {token}")
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    with pytest.raises(Unauthenticated, match="wrong secret"):
        await auth.authenticate(f"Bearer {forged}")


async def test_a_revoked_token_fails_at_once_though_it_was_cached(users: FakeUsers) -> None:
    auth = Authenticator(users)  # type: ignore[arg-type]
    token, other = users.issue(TOM), users.issue(TOM)
    me = await auth.authenticate(f"Bearer {token}")
    await auth.authenticate(f"Bearer {other}")
    del users.rows[me.token_id]
    auth.revoke([me.token_id])
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        await auth.authenticate(f"Bearer {token}")
    with pytest.raises(Unauthenticated, match="was revoked"):
        auth.check(me.token_id)  # what open streams ask before each message
    assert (await auth.authenticate(f"Bearer {other}")).user == "tom"


async def test_a_revocation_racing_the_verification_is_not_cached_away(users: FakeUsers) -> None:
    """The row was read before RevokeToken committed; the verification finishes after it."""
    auth = Authenticator(users)  # type: ignore[arg-type]
    token = users.issue(TOM)
    token_id = token.split("_")[1]
    real_owner = users.owner

    async def owner_then_revoked(key: str) -> TokenOwner | None:
        found = await real_owner(key)
        auth.revoke([key])
        return found

    users.owner = owner_then_revoked  # type: ignore[method-assign]
    with pytest.raises(Unauthenticated, match=f"{token_id} was revoked"):
        await auth.authenticate(f"Bearer {token}")


async def test_calls_arriving_together_share_one_verification(users: FakeUsers) -> None:
    """When the cache expires under load, one argon2 run serves every call waiting for it, a refusal included."""
    auth = Authenticator(users)  # type: ignore[arg-type]
    token = users.issue(TOM)
    found = await asyncio.gather(*(auth.authenticate(f"Bearer {token}") for _ in range(20)))
    assert users.reads == 1 and len({p.token_id for p in found}) == 1
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    refused = await asyncio.gather(*(auth.authenticate(f"Bearer {wrong}") for _ in range(5)), return_exceptions=True)
    assert users.reads == 2 and all(isinstance(r, Unauthenticated) for r in refused)


async def test_a_revocation_after_a_shared_verification_refuses_the_calls_not_yet_answered(users: FakeUsers) -> None:
    """The shared verification finished and cached the token; RevokeToken came before this call read the answer."""
    auth = Authenticator(users)  # type: ignore[arg-type]
    token = users.issue(TOM)
    token_id = token.split("_")[1]
    waiting = asyncio.create_task(auth.authenticate(f"Bearer {token}"))
    while not auth._cache:  # the verification has finished; its answer is not yet read
        await asyncio.sleep(0)
    auth.revoke([token_id])
    with pytest.raises(Unauthenticated, match=f"{token_id} was revoked"):
        await waiting


async def test_a_zero_cache_reads_the_store_every_time(users: FakeUsers) -> None:
    auth = Authenticator(users, cache_seconds=0)  # type: ignore[arg-type]
    token = users.issue(TOM)
    await auth.authenticate(f"Bearer {token}")
    await auth.authenticate(f"Bearer {token}")
    assert users.reads == 2


def test_principal_sees_only_its_accounts_unless_admin() -> None:
    tom = Principal("tom", Role.TRADER, "t1", frozenset({"alpha"}))
    root = Principal("root", Role.ADMIN, "t2", frozenset())
    assert tom.visible(["alpha", "beta"]) == ["alpha"] and root.visible(["alpha", "beta"]) == ["alpha", "beta"]
    with pytest.raises(PermissionDenied, match="account beta is not one of tom's accounts \\(alpha\\)"):
        tom.require("beta")
    root.require("beta")


def test_rate_limiter_allows_the_burst_then_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_second=10, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.1)
    assert limiter.take("b") == 0.0  # per key
    now[0] = 0.1
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    now[0] = 100.0
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # refills only up to the burst


def test_rate_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimiter(per_second=0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(per_second=1, burst=0)


def test_audit_detail_leaves_out_the_login_redirect_and_names_the_target() -> None:
    login = accounts_pb2.CompleteLoginRequest(account="alpha", redirect="https://cb/?request_token=s3cr3t")
    assert "s3cr3t" not in _detail(login) and 'account: "alpha"' in _detail(login)
    assert _target(login) == "account=alpha"
    order = orders_pb2.CancelOrderRequest(order_id="o-1")
    assert _target(order) == "order_id=o-1"
    long = orders_pb2.PlaceOrderRequest(client_order_id="x" * 64, instrument="NSE:" + "Y" * 600)
    assert len(_detail(long)) == 500 and _detail(long).endswith("…")
