"""TLS and mutual TLS on the gRPC API and the metrics endpoint, against the real daemon.

Two daemons, because each start costs seconds. The mutual-TLS one covers the refusals: a plaintext
client, a client trusting another CA, and clients with no certificate or one from another CA. The
TLS-only one shows that without a client CA a client needs no certificate.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.python import Client, TlsOptions
from tests.certs import CertAuthority, Issued
from tests.integration.daemon import ROOT, Daemon
from tests.integration.daemon import test_config as config_text  # imported as test_*, pytest would collect it
from trademaster.v1 import accounts_pb2

CALL_TIMEOUT = 10.0


@dataclass(frozen=True)
class Pki:
    ca: CertAuthority
    server: Issued
    client: Issued
    stranger: CertAuthority  # a CA the daemons do not trust, with a client certificate of its own
    stranger_client: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, stranger = CertAuthority(directory, "trusted"), CertAuthority(directory, "stranger")
    return Pki(
        ca,
        ca.issue("server", server=True),
        ca.issue("bot", server=False),
        stranger,
        stranger.issue("bot", server=False),
    )


def start(tmp_path_factory: pytest.TempPathFactory, name: str, pki: Pki, mutual: bool) -> Daemon:
    tls = TlsOptions(pki.ca.cert, pki.client.cert, pki.client.key) if mutual else TlsOptions(pki.ca.cert)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    daemon = Daemon(tmp_path_factory.mktemp(name) / "data", artifacts / f"daemon-{name}.log", tls=tls)
    keys = f'tls_cert_file = "{pki.server.cert}"\ntls_key_file = "{pki.server.key}"\n'
    if mutual:
        keys += f'tls_client_ca_file = "{pki.ca.cert}"\n'
    daemon.config.write_text(config_text(daemon.grpc_port, daemon.metrics_port, server_extra=keys))
    daemon.start()
    return daemon


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Daemon]:
    daemon = start(tmp_path_factory, "mtls", pki, mutual=True)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Daemon]:
    daemon = start(tmp_path_factory, "tls", pki, mutual=False)
    yield daemon
    daemon.stop()


def account_ids(client: Client) -> list[str]:
    reply = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=CALL_TIMEOUT)
    return [a.id for a in reply.accounts]


def refused(client: Client) -> grpc.StatusCode:
    """The code of a ListAccounts that must fail; UNAVAILABLE means the handshake, not the token, refused it."""
    with client, pytest.raises(grpc.RpcError) as caught:
        account_ids(client)
    return caught.value.code()


def https(daemon: Daemon, ca: Path, client: Issued | None) -> httpx.Response:
    """A scrape with the admin token, so only TLS can refuse it."""
    context = ssl.create_default_context(cafile=ca)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    token = {"authorization": f"Bearer {daemon.admin_token}"}
    url = f"https://127.0.0.1:{daemon.metrics_port}/metrics"
    return httpx.get(url, headers=token, verify=context, timeout=CALL_TIMEOUT)


def test_mutual_tls_admits_a_client_certificate_from_the_ca(mtls: Daemon, pki: Pki) -> None:
    with mtls.client() as client:
        assert account_ids(client) == ["alpha", "beta", "gamma"]
    by_name = TlsOptions(pki.ca.cert, pki.client.cert, pki.client.key, server_name="localhost")
    with mtls.client(tls=by_name) as client:  # the certificate's DNS name, checked in place of the address's IP
        assert account_ids(client) == ["alpha", "beta", "gamma"]


def test_mutual_tls_refuses_plaintext_and_strangers(mtls: Daemon, pki: Pki) -> None:
    with grpc.insecure_channel(mtls.address) as channel, pytest.raises(grpc.RpcError) as plaintext:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE

    for wrong in (
        TlsOptions(pki.ca.cert),  # no client certificate
        TlsOptions(pki.ca.cert, pki.stranger_client.cert, pki.stranger_client.key),  # one from another CA
        TlsOptions(pki.stranger.cert, pki.client.cert, pki.client.key),  # trusts another CA
        TlsOptions(pki.ca.cert, pki.client.cert, pki.client.key, server_name="elsewhere.test"),  # not in the SAN
    ):
        assert refused(mtls.client(tls=wrong)) == grpc.StatusCode.UNAVAILABLE, wrong


def test_mutual_tls_guards_the_metrics_endpoint(mtls: Daemon, pki: Pki) -> None:
    scraped = https(mtls, pki.ca.cert, pki.client)
    assert scraped.status_code == 200 and "trademaster_rpc_duration_seconds" in scraped.text
    with pytest.raises(httpx.TransportError):
        https(mtls, pki.ca.cert, None)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{mtls.metrics_port}/metrics", timeout=CALL_TIMEOUT)


def test_tls_without_client_ca_needs_no_client_certificate(tls: Daemon, pki: Pki) -> None:
    with tls.client() as client:
        assert account_ids(client) == ["alpha", "beta", "gamma"]
    assert refused(tls.client(tls=TlsOptions(ca_file=pki.stranger.cert))) == grpc.StatusCode.UNAVAILABLE
    assert https(tls, pki.ca.cert, None).status_code == 200
