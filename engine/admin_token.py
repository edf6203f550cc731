"""The first start's admin: with no users in the database, create `admin` and a token for it, write the
token to a 0600 file in the data dir where the CLI looks for it, and print it once.

Nothing is ever open without a token, so this is how a fresh install is reachable at all.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.files import write_atomically
from engine.security.tokens import format_token, hash_secret, new_token
from engine.store.users import UserStore

log = logging.getLogger(__name__)
ADMIN = "admin"


async def ensure_admin(users: UserStore, token_file: Path, renew: bool = False) -> str | None:
    """Create the first admin and return its token, or None when users exist already.

    ``renew`` is the way back in after the token is lost: `admin` becomes an admin again (recreated if it
    was removed) with a new token, and its earlier tokens are revoked, since a lost token may be in someone
    else's hands. Whoever can start the daemon on its data dir could read the database anyway, so this
    grants nothing new.

    The rows come before the file: a crash in between leaves a token nobody holds, and `--new-admin-token`
    makes another; the other order could leave a file whose token was never stored.
    """
    if not renew and await users.any_user():
        return None
    token_id, secret = new_token()
    token = format_token(token_id, secret)
    if not await users.add_admin_token(ADMIN, token_id, hash_secret(secret), only_if_no_users=not renew):
        return None
    write_atomically(token_file, token + "\n")
    log.warning("user %s has a new API token in %s (mode 0600)", ADMIN, token_file)
    return token
