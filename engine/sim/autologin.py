"""Fill in a simulator's login form the way a person would, and return where it redirects.

Only simulators are logged in like this: a real broker's login needs the account holder (password
plus TOTP in a browser), which `trademaster accounts login` walks them through.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx


async def form_login(login_url: str, user_id: str, password: str) -> str:
    """POST the login page's own query parameters plus the credentials; return the redirect's Location."""
    parts = urlsplit(login_url)
    form = {**dict(parse_qsl(parts.query)), "user_id": user_id, "password": password}
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
        response = await client.post(urlunsplit(parts._replace(query="")), data=form)
    location = response.headers.get("location")
    if response.status_code not in (302, 303) or not location:
        raise RuntimeError(f"simulator login for {user_id} failed: HTTP {response.status_code} {response.text[:200]}")
    return location
