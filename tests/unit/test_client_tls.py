"""The SDK's TLS options: a client certificate without its key is a mistake caught before dialling."""

from __future__ import annotations

import pytest

from clients.python import TlsOptions


@pytest.mark.parametrize("half", [{"cert_file": "bot.pem"}, {"key_file": "bot.key"}])
def test_client_certificate_needs_its_key(half: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="give both cert_file and key_file"):
        TlsOptions(ca_file="ca.pem", **half)
