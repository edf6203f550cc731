"""Broker credentials at rest: AES-256-GCM, each ciphertext bound to the row it belongs to.

The context (for example ``account:ZD0001:access_token``) is authenticated as associated data, so a
ciphertext copied into another row or column fails to decrypt instead of handing out the wrong secret.
Tokens are text (``v1:<base64url(nonce | ciphertext)>``) so they fit a TEXT column and a later key or
algorithm change can be told apart by its prefix.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = "v1"


class SecretError(Exception):
    """A secret cannot be decrypted or the key cannot be loaded; the message says which and why."""


class SecretBox:
    """Encrypts and decrypts short secrets with one 256-bit key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretError(f"encryption key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, context: str) -> str:
        """A fresh random nonce per call: GCM with a repeated nonce under one key leaks plaintexts."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _associated_data(context))
        return f"{VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, token: str, context: str) -> str:
        version, sep, body = token.partition(":")
        if not sep or version != VERSION:
            raise SecretError(f"encrypted secret for {context!r} is not a {VERSION} token")
        try:
            raw = base64.b64decode(body, altchars=b"-_", validate=True)
        except ValueError as exc:
            raise SecretError(f"encrypted secret for {context!r} is not valid base64url") from exc
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SecretError(f"encrypted secret for {context!r} is too short to be a {VERSION} token")
        try:
            plaintext = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(context))
        except InvalidTag as exc:
            raise SecretError(
                f"cannot decrypt secret for {context!r}: wrong key, wrong context (copied from another row?) "
                "or altered ciphertext"
            ) from exc
        return plaintext.decode()


def _associated_data(context: str) -> bytes:
    if not context:
        raise ValueError("context must name the secret's owner, e.g. 'account:ZD0001:access_token'")
    return context.encode()


def load_key(key_file: Path | None, env_var: str) -> bytes:
    """The key from ``env_var`` (base64 of 32 bytes) if set and non-empty, else from ``key_file``.

    The environment wins so containers and systemd credentials can supply the key without a file. A file
    readable by group or others is refused: the key decrypts every stored broker credential.
    """
    from_env = os.environ.get(env_var, "")
    if from_env:
        return _decode_key(from_env, f"environment variable {env_var}")
    if key_file is None:
        raise SecretError(f"no encryption key: set {env_var} or configure a key file")
    try:
        exposed = exposure(key_file)
    except FileNotFoundError as exc:
        raise SecretError(f"key file {key_file} does not exist (and {env_var} is not set)") from exc
    if exposed:
        raise SecretError(f"key file {key_file} {exposed}")
    return _decode_key(key_file.read_bytes(), f"key file {key_file}")


def exposure(path: Path) -> str | None:
    """What is wrong with a private file's mode, or None: like ssh, a key others may read is refused."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"is readable by group or others (mode {mode:04o}); run: chmod 600 {path}"
    return None


def _decode_key(text: str | bytes, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise SecretError(f"{source} is not base64 (expected base64 of {KEY_BYTES} random bytes)") from exc
    if len(key) != KEY_BYTES:
        raise SecretError(f"{source} decodes to {len(key)} bytes; the key must be {KEY_BYTES} bytes")
    return key


def create_key_file(path: Path) -> bytes:
    """Write a new random key with mode 0600 for the first start of a local install, and return it.

    The key is written to a temporary file and hard-linked into place, so a crash never leaves a partial
    key behind and an existing key is never replaced (that would make every stored secret unreadable):
    if ``path`` exists this raises FileExistsError, and a caller racing another process can then load it.
    """
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as tmp:
            os.fchmod(tmp.fileno(), 0o600)
            tmp.write(base64.b64encode(key).decode("ascii") + "\n")
            tmp.flush()
            os.fsync(tmp.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError as exc:
            raise FileExistsError(errno.EEXIST, "key file already exists; refusing to replace it", str(path)) from exc
    finally:
        os.unlink(tmp_name)
    _fsync_dir(path.parent)
    return key


def load_or_create_key(key_file: Path, env_var: str) -> tuple[bytes, bool]:
    """The key as ``load_key`` finds it, or a new key file when neither exists; True when it was created now.

    Only an absent file is created: a file that exists but cannot be loaded (bad mode, wrong length) is an
    error, since replacing it would lose every secret encrypted under it.
    """
    if os.environ.get(env_var) or key_file.exists():
        return load_key(key_file, env_var), False
    try:
        return create_key_file(key_file), True
    except FileExistsError:  # another process (a CLI command, a second daemon) created it first
        return load_key(key_file, env_var), False


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entry durable, so the key survives a power cut right after start-up."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
