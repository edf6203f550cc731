"""Broker credentials from the config file: written encrypted as ``enc:v1:...``, decrypted where they are used.

The context binds each value to its account and field, so an ``enc:`` value pasted under another account or
field fails to decrypt instead of sending one account's secret to another's broker. Plaintext values still
work (a local install may not bother), and every value, either way, is registered with the log redactor.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from engine.config import AccountSettings
from engine.security import redaction
from engine.security.secrets import SecretBox, SecretError

ENCRYPTED_PREFIX = "enc:"


class ConfigSecret(StrEnum):
    API_SECRET = "api_secret"  # connection.api_secret, or the variable connection.api_secret_env names
    PASSWORD = "password"  # connection.sim_login.password


def _context(account: str, field: ConfigSecret) -> str:
    return f"account:{account}:{field}"


def encrypt_config_value(box: SecretBox, account: str, field: ConfigSecret, plaintext: str) -> str:
    """The ``enc:v1:...`` text to put in the config file (or the api_secret_env variable) instead of the secret."""
    return ENCRYPTED_PREFIX + box.encrypt(plaintext, _context(account, field))


def _reveal(box: SecretBox, value: str, account: str, field: ConfigSecret) -> str:
    if not value.startswith(ENCRYPTED_PREFIX):
        return value
    try:
        return box.decrypt(value.removeprefix(ENCRYPTED_PREFIX), _context(account, field))
    except SecretError as exc:
        again = f"trademaster secrets encrypt --account {account} --field {field}"
        raise SecretError(f"{exc}; make the value again with: {again}") from None


def reveal_account(account: AccountSettings, box: SecretBox) -> AccountSettings:
    """``account`` with its secrets in plaintext, for building its broker adapter; raises SecretError if one fails.

    The api_secret_env indirection is resolved here too, so the adapter factory reads ``api_secret`` alone.
    """
    connection = account.connection
    api_secret = _reveal(box, connection.secret(), account.id, ConfigSecret.API_SECRET)
    login = connection.sim_login
    if login is not None:
        login = login.model_copy(update={"password": _reveal(box, login.password, account.id, ConfigSecret.PASSWORD)})
    redaction.register(api_secret)
    if login is not None:
        redaction.register(login.password)
    revealed = connection.model_copy(update={"api_secret": api_secret, "api_secret_env": "", "sim_login": login})
    return account.model_copy(update={"connection": revealed})


def register_plaintext(accounts: Iterable[AccountSettings]) -> None:
    """Redact the secrets a process holds in plaintext only because the config file has them so.

    The gateway never decrypts, but it does hold the settings, and a settings model's repr shows every field.
    """
    for account in accounts:
        connection = account.connection
        values = [connection.secret(), connection.sim_login.password if connection.sim_login else ""]
        for value in values:
            if not value.startswith(ENCRYPTED_PREFIX):
                redaction.register(value)
