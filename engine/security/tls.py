"""Checks on the daemon's TLS files, run when the configuration is loaded.

Without these checks a wrong file shows up only as a failed handshake at the first client, after
PostgreSQL and Ray have started. Wrong files include a key in the certificate's place, the key of another
certificate, and a passphrase-protected key (gRPC cannot use one). A key that other users can read is
refused, as ssh refuses one and as ``secrets.load_key`` refuses the encryption key.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from engine.security.secrets import exposure


def check_server_tls(cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None) -> None:
    """Raise ValueError naming the setting (tls_cert_file, tls_key_file, tls_client_ca_file) that is wrong."""
    if (cert_file is None) != (key_file is None):
        given, missing = ("tls_cert_file", "tls_key_file") if key_file is None else ("tls_key_file", "tls_cert_file")
        raise ValueError(f"{given} is set but {missing} is not: TLS needs both the certificate and its key")
    if client_ca_file is not None and cert_file is None:
        raise ValueError(
            "tls_client_ca_file needs tls_cert_file and tls_key_file: mutual TLS is TLS plus client certificates"
        )
    if cert_file is None or key_file is None:
        return
    leaf = _certificates("tls_cert_file", cert_file)[0]
    key = _private_key("tls_key_file", key_file)
    if _public_der(leaf.public_key()) != _public_der(key.public_key()):
        raise ValueError(f"tls_key_file {key_file} is not the key of the first certificate in {cert_file}")
    if client_ca_file is not None:
        _certificates("tls_client_ca_file", client_ca_file)


def _certificates(setting: str, path: Path) -> list[x509.Certificate]:
    data = _read(setting, path)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{setting} {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def _private_key(setting: str, path: Path) -> PrivateKeyTypes:
    data = _read(setting, path)
    exposed = exposure(path)
    if exposed:
        raise ValueError(f"{setting} {path} {exposed}")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError(
            f"{setting} {path} is encrypted; gRPC needs an unencrypted key (protect it with chmod 600 instead)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{setting} {path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)") from None


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{setting} {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{setting} {path} is a directory, not a PEM file") from None
    except PermissionError:
        raise ValueError(f"{setting} {path} cannot be read by the daemon's user (permission denied)") from None
    except OSError as exc:
        raise ValueError(f"{setting} {path} cannot be read: {exc.strerror}") from None


def _public_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
