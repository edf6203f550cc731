"""The daemon's addresses are checked before anything starts: one taken, or not of this host, is named with its
setting; free ones, IPv4 or IPv6, pass."""

from __future__ import annotations

import socket

import pytest

from engine.api.server import CannotListen
from engine.config import ServerSettings
from engine.daemon import _check_addresses
from tests.integration.daemon import free_port


def _settings(**addresses: str) -> ServerSettings:
    return ServerSettings.model_validate({"listen": f"127.0.0.1:{free_port()}", "metrics_listen": "", **addresses})


def test_free_addresses_pass_and_stay_free() -> None:
    settings = _settings(metrics_listen=f"127.0.0.1:{free_port()}", web_listen=f"127.0.0.1:{free_port()}")
    _check_addresses(settings)
    _check_addresses(settings)  # let go at once: the daemon binds them next


def test_an_address_in_use_is_named_with_its_setting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(CannotListen, match=rf"cannot listen on 127.0.0.1:{port} \(server.web_listen\): .*in use"):
            _check_addresses(_settings(web_listen=f"127.0.0.1:{port}"))


def test_an_address_not_of_this_host_is_refused() -> None:
    with pytest.raises(CannotListen, match=r"\(server.metrics_listen\)"):
        _check_addresses(_settings(metrics_listen="192.0.2.1:9464"))  # TEST-NET-1: never this host's


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 here")
def test_an_ipv6_address_is_checked_as_ipv6() -> None:
    try:
        probe = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with probe:
        port = probe.getsockname()[1]
        with pytest.raises(CannotListen, match=rf"\[::1\]:{port} \(server.listen\)"):
            _check_addresses(_settings(listen=f"[::1]:{port}"))
