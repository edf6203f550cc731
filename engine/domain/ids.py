"""Order ids that fit every broker's tag field (Kite: at most 20 alphanumerics) and sort by time; short stable
codes that stand for longer names inside client order ids; and which strategy a client order id belongs to."""

import base64
import hashlib
import os
import re
import time

SHORT_CODE_LENGTH = 8
_STRATEGY_ORDER = re.compile(r"^(S[A-Z2-7]{16})-")
_PROTECTION = re.compile(r"^(S[A-Z2-7]{16}-)(?:stop|target)-(\d+)-\d+$")


def new_order_id() -> str:
    """16 characters: 6 bytes of milliseconds and 4 random bytes, base32 without padding."""
    raw = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(4)
    return base64.b32encode(raw).decode().rstrip("=")


def short_code(text: str) -> str:
    """SHORT_CODE_LENGTH lowercase base32 characters standing for `text`, the same on every call.

    Client order ids made for many accounts at once (batch legs, exits, the kill switch) carry an account's
    code, not its id: account ids may hold characters client ids refuse ('.') and be 40 characters long, while
    the code always fits and keeps a retry's ids equal to the first attempt's. 40 bits: two accounts of one
    daemon sharing a code is a one-in-a-billion event for a thousand accounts.
    """
    digest = hashlib.blake2b(text.encode(), digest_size=5).digest()
    return base64.b32encode(digest).decode().lower()


def strategy_of(client_order_id: str) -> str | None:
    """The strategy whose order this is ("<strategy id>-<key>", strategy ids being "S" + new_order_id()),
    or None for any other order. PlaceOrder and batch refuse such ids from users, so the match is sure."""
    found = _STRATEGY_ORDER.match(client_order_id)
    return found.group(1) if found else None


def protection_key(role: str, attempt: int, n: int) -> str:
    """The key of a bracket's `n`th stop or target order of entry `attempt`: one attempt's stops and targets
    are one OCO pair, whatever their number (see oco_pair)."""
    return f"{role}-{attempt}-{n}"


def oco_pair(client_order_id: str) -> str | None:
    """The OCO pair a strategy order belongs to ("<strategy id>-<attempt>" for a bracket's stops and targets),
    or None for an order that is not one side of a pair: when one side fills the strategy cancels the other,
    so the pair can close at most its larger side."""
    found = _PROTECTION.match(client_order_id)
    return f"{found.group(1)}{found.group(2)}" if found else None
