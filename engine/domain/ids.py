"""Order ids that fit every broker's tag field (Kite: at most 20 alphanumerics) and sort by time."""

import base64
import os
import time


def new_order_id() -> str:
    """16 characters: 6 bytes of milliseconds and 4 random bytes, base32 without padding."""
    raw = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(4)
    return base64.b32encode(raw).decode().rstrip("=")
