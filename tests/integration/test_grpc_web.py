"""gRPC-web on the daemon's web port (server.web_listen), spoken by hand as a browser's client would.

Frames are built and parsed here, not with engine/web, so a framing mistake there cannot hide in both;
the payloads are the generated messages. One daemon for the module, started with `serve --web`. The last
test runs the proxy in this process over TLS, in front of a small gRPC server of its own, to show the proxy
knows no service and carries metadata both ways.
"""

from __future__ import annotations

import base64
import contextlib
import re
import signal
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import grpc
import httpx
import pytest
from google.protobuf.message import Message

from engine.config import ServerSettings
from engine.web.server import WebServer
from tests.certs import CertAuthority
from tests.integration.daemon import ROOT, Daemon, free_port, head_sequence, wait_for
from tests.integration.daemon import test_config as config_text
from tests.integration.test_orders import place as place_order
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, portfolio_pb2, security_pb2

CALL_TIMEOUT = 15.0
BINARY = "application/grpc-web+proto"
TEXT = "application/grpc-web-text+proto"
INDEX = "<!doctype html><title>TradeMaster test dashboard</title>"


@dataclass(frozen=True)
class Web:
    daemon: Daemon
    url: str
    root: Path


@dataclass
class Reply:
    """A gRPC-web response taken apart: the HTTP response, its messages and its trailers."""

    http: httpx.Response
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return int(self.trailers["grpc-status"])

    @property
    def message(self) -> str:
        return unquote(self.trailers.get("grpc-message", ""))


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    base = tmp_path_factory.mktemp("grpc-web")
    root = base / "dist"
    root.mkdir()
    (root / "index.html").write_text(INDEX)
    daemon = Daemon(base / "data", ROOT / "test-artifacts" / "daemon-grpc-web.log")
    port = free_port()
    keys = f'web_listen = "127.0.0.1:{port}"\nweb_root = "{root}"\n'
    daemon.config.write_text(config_text(daemon.grpc_port, daemon.metrics_port, server_extra=keys))
    daemon.start("--web")
    yield Web(daemon, f"http://127.0.0.1:{port}", root)
    daemon.stop()


def framed(request: Message) -> bytes:
    payload = request.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def split_frames(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Messages, then exactly one trailers frame, last."""
    messages: list[bytes] = []
    while body:
        assert len(body) >= 5, f"a cut frame: {body!r}"
        flags, length = body[0], int.from_bytes(body[1:5], "big")
        payload, body = body[5 : 5 + length], body[5 + length :]
        assert len(payload) == length
        if flags == 0x80:
            assert not body, "data after the trailers frame"
            return messages, parse_trailers(payload)
        assert flags == 0x00, f"frame flags {flags:#x}"
        messages.append(payload)
    raise AssertionError("no trailers frame")


def parse_trailers(block: bytes) -> dict[str, str]:
    text = block.decode("ascii")
    assert text.endswith("\r\n")
    return dict(line.split(":", 1) for line in text.removesuffix("\r\n").split("\r\n"))


def from_text(body: bytes) -> bytes:
    """grpc-web-text: base64 chunks, each padded on its own; every 4 characters decode alone."""
    assert len(body) % 4 == 0
    return b"".join(base64.b64decode(body[i : i + 4], validate=True) for i in range(0, len(body), 4))


def headers(token: str | None, content_type: str = BINARY, **extra: str) -> dict[str, str]:
    found = {"content-type": content_type, "x-grpc-web": "1", "x-user-agent": "grpc-web-javascript/0.1", **extra}
    if token is not None:
        found["authorization"] = f"Bearer {token}"
    return found


def stream(web: Web, method: str, request: Message) -> contextlib.AbstractContextManager[httpx.Response]:
    """A server stream through the proxy, as the admin, left open while the block runs."""
    return httpx.stream(
        "POST",
        f"{web.url}/trademaster.v1.{method}",
        content=framed(request),
        headers=headers(web.daemon.admin_token),
        timeout=CALL_TIMEOUT,
    )


def call(web: Web, method: str, request: Message, token: str | None, text: bool = False, **extra: str) -> Reply:
    body = framed(request)
    response = httpx.post(
        f"{web.url}/trademaster.v1.{method}",
        content=base64.b64encode(body) if text else body,
        headers=headers(token, TEXT if text else BINARY, **extra),
        timeout=CALL_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    messages, trailers = split_frames(from_text(response.content) if text else response.content)
    return Reply(response, messages, trailers)


class FrameReader:
    """Frames off a streaming response, each as soon as its bytes have arrived."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._buffer = b""

    def next(self) -> tuple[int, bytes]:
        while len(self._buffer) < 5 or len(self._buffer) < 5 + int.from_bytes(self._buffer[1:5], "big"):
            self._buffer += next(self._chunks)
        length = int.from_bytes(self._buffer[1:5], "big")
        flags, payload = self._buffer[0], self._buffer[5 : 5 + length]
        self._buffer = self._buffer[5 + length :]
        return flags, payload


def open_streams(daemon: Daemon, method: str) -> float:
    """The daemon's gauge of server streams open, for one method (from its Prometheus endpoint)."""
    scrape = httpx.get(
        f"http://127.0.0.1:{daemon.metrics_port}/metrics",
        headers={"authorization": f"Bearer {daemon.admin_token}"},
        timeout=CALL_TIMEOUT,
    )
    match = re.search(rf'^trademaster_open_streams{{method="{method}"}} (\S+)$', scrape.text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def place(daemon: Daemon, account: str) -> str:
    """A market buy of one INFY through the daemon's own gRPC port; its order id."""
    with daemon.client() as client:
        return place_order(client, account=account).order.order_id


def event_order_id(event: orders_pb2.OrderEvent) -> str:
    return event.order.order_id if event.HasField("order") else event.fill.order_id


def test_unary_call_in_binary_mode(web: Web) -> None:
    reply = call(web, "AccountService/ListAccounts", accounts_pb2.ListAccountsRequest(), web.daemon.admin_token)
    assert reply.http.headers["content-type"] == BINARY
    assert reply.status == 0 and "grpc-message" not in reply.trailers
    (message,) = reply.messages
    assert [a.id for a in accounts_pb2.ListAccountsResponse.FromString(message).accounts] == ["alpha", "beta", "gamma"]

    who = call(web, "SecurityService/WhoAmI", security_pb2.WhoAmIRequest(), web.daemon.admin_token)
    assert who.status == 0
    assert security_pb2.User.FromString(who.messages[0]).name == "admin"


def test_unary_call_in_text_mode(web: Web) -> None:
    reply = call(web, "SecurityService/WhoAmI", security_pb2.WhoAmIRequest(), web.daemon.admin_token, text=True)
    assert reply.http.headers["content-type"] == TEXT
    assert re.fullmatch(rb"[A-Za-z0-9+/=]+", reply.http.content), "a text-mode body is base64 only"
    assert reply.status == 0
    user = security_pb2.User.FromString(reply.messages[0])
    assert (user.name, user.role) == ("admin", security_pb2.ROLE_ADMIN)


def test_server_stream_is_relayed_as_it_happens(web: Web) -> None:
    """Each order placed after the previous one's events arrived shows up on the same open response: the proxy
    relays the stream as it goes instead of holding the response until the stream ends (it never does)."""
    with web.daemon.client() as client:
        after = head_sequence(client)
    first = place(web.daemon, "beta")  # its events are caught up at once, so the response starts
    request = orders_pb2.StreamOrderEventsRequest(account="beta", after_sequence=after)
    with stream(web, "OrderService/StreamOrderEvents", request) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/grpc-web")
        reader = FrameReader(response)
        flags, payload = reader.next()
        assert flags == 0x00
        assert event_order_id(orders_pb2.OrderEvent.FromString(payload)) == first
        for _ in range(2):
            order_id = place(web.daemon, "beta")
            seen = set()
            while order_id not in seen:
                flags, payload = reader.next()
                assert flags == 0x00, f"the stream ended: {parse_trailers(payload)}"
                seen.add(event_order_id(orders_pb2.OrderEvent.FromString(payload)))


def test_errors_arrive_in_the_trailers(web: Web) -> None:
    anonymous = call(web, "AccountService/ListAccounts", accounts_pb2.ListAccountsRequest(), None)
    assert anonymous.status == grpc.StatusCode.UNAUTHENTICATED.value[0] and not anonymous.messages
    assert anonymous.message.startswith("missing API token: send the header 'authorization: Bearer <token>'")

    bad_price = orders_pb2.PlaceOrderRequest(
        client_order_id=f"web-{uuid.uuid4().hex[:16]}",
        account="beta",
        instrument="NSE:INFY",
        side=common_pb2.SIDE_BUY,
        quantity=1,
        product=common_pb2.PRODUCT_MIS,
        order_type=common_pb2.ORDER_TYPE_LIMIT,
        price="1,5€",
    )
    refused = call(web, "OrderService/PlaceOrder", bad_price, web.daemon.admin_token, text=True)
    assert refused.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "%E2%82%AC" in refused.trailers["grpc-message"]  # the euro sign, percent-encoded UTF-8
    assert refused.message == "price: not a decimal number: '1,5€'"

    with web.daemon.client() as client:
        quiet = orders_pb2.StreamOrderEventsRequest(account="gamma", after_sequence=head_sequence(client))
    timed_out = call(web, "OrderService/StreamOrderEvents", quiet, web.daemon.admin_token, **{"grpc-timeout": "300m"})
    assert timed_out.status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]

    unknown = call(web, "OrderService/NoSuchMethod", orders_pb2.GetOrderRequest(), web.daemon.admin_token)
    assert unknown.status == grpc.StatusCode.UNIMPLEMENTED.value[0]


def test_the_audit_trail_names_the_browser_not_the_proxy(web: Web) -> None:
    """The proxy calls from loopback; the audit entry adds the address the proxy saw, never one the browser wrote."""
    spoofed = {"x-forwarded-for": "203.0.113.9"}
    reply = call(web, "SecurityService/WhoAmI", security_pb2.WhoAmIRequest(), None, **spoofed)
    assert reply.status == grpc.StatusCode.UNAUTHENTICATED.value[0]

    def refusal() -> security_pb2.AuditEntry | None:
        with web.daemon.client() as client:
            entries = client.security.TailAudit(security_pb2.TailAuditRequest(limit=20)).entries
        found = [e for e in entries if e.action == "SecurityService/WhoAmI" and e.actor == "anonymous"]
        return found[-1] if found else None

    entry = wait_for(refusal)
    assert entry.peer.startswith("ipv4:127.0.0.1:") and entry.peer.endswith(" for 127.0.0.1")
    assert "203.0.113.9" not in entry.peer


def test_malformed_requests_are_refused_with_a_status(web: Web) -> None:
    url = f"{web.url}/trademaster.v1.SecurityService/WhoAmI"
    token = web.daemon.admin_token
    for body, code in (
        (b"\x01\x00\x00\x00\x00", grpc.StatusCode.UNIMPLEMENTED),  # compressed
        (b"\x00\x00\x00\x00\x09abc", grpc.StatusCode.INVALID_ARGUMENT),  # cut short
        (b"\x00\x7f\xff\xff\xff", grpc.StatusCode.RESOURCE_EXHAUSTED),  # a 2 GiB message announced
        (b"", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        response = httpx.post(url, content=body, headers=headers(token), timeout=CALL_TIMEOUT)
        assert response.status_code == 200
        _, trailers = split_frames(response.content)
        assert int(trailers["grpc-status"]) == code.value[0], (body, trailers)
    oversized = httpx.post(url, content=b"\x00" * (5 * 1024 * 1024), headers=headers(token), timeout=CALL_TIMEOUT)
    assert int(split_frames(oversized.content)[1]["grpc-status"]) == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    not_base64 = httpx.post(url, content=b"!!!!", headers=headers(token, TEXT), timeout=CALL_TIMEOUT)
    assert "not base64" in unquote(split_frames(from_text(not_base64.content))[1]["grpc-message"])
    wrong_type = httpx.post(url, content=b"", headers=headers(token, "application/json"), timeout=CALL_TIMEOUT)
    assert wrong_type.status_code == 415


def test_cors_preflight_and_exposed_headers(web: Web) -> None:
    origin = "http://dashboard.test:5173"
    asked = ["authorization", "content-type", "grpc-timeout", "x-grpc-web", "x-user-agent"]
    preflight = httpx.options(
        f"{web.url}/trademaster.v1.OrderService/PlaceOrder",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": ", ".join(asked),
        },
        timeout=CALL_TIMEOUT,
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] in ("*", origin)
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert set(asked) <= allowed

    reply = call(web, "SecurityService/WhoAmI", security_pb2.WhoAmIRequest(), web.daemon.admin_token, origin=origin)
    assert reply.http.headers["access-control-allow-origin"] in ("*", origin)
    exposed = {h.strip() for h in reply.http.headers["access-control-expose-headers"].split(",")}
    assert {"grpc-status", "grpc-message"} <= exposed


def test_a_browser_leaving_a_stream_ends_the_upstream_call(web: Web) -> None:
    """Shown by the daemon's own gauge of open server streams, for a stream that is sending and one that is quiet."""
    daemon = web.daemon
    request = portfolio_pb2.StreamPortfolioRequest(accounts=["alpha"], min_interval_ms=100)
    with stream(web, "PortfolioService/StreamPortfolio", request) as response:
        reader = FrameReader(response)
        flags, payload = reader.next()
        assert flags == 0x00 and portfolio_pb2.Portfolio.FromString(payload).accounts[0].account == "alpha"
        assert open_streams(daemon, "StreamPortfolio") == 1
    wait_for(lambda: open_streams(daemon, "StreamPortfolio") == 0, timeout=20)

    # Quiet: nothing new for gamma. Its headers arrive at once, so the browser knows the stream is open; then
    # nothing, until the browser leaves.
    wait_for(lambda: open_streams(daemon, "StreamOrderEvents") == 0, timeout=20)
    with daemon.client() as client:
        quiet = orders_pb2.StreamOrderEventsRequest(account="gamma", after_sequence=head_sequence(client))
    with stream(web, "OrderService/StreamOrderEvents", quiet) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/grpc-web")
        wait_for(lambda: open_streams(daemon, "StreamOrderEvents") == 1, timeout=20)
    wait_for(lambda: open_streams(daemon, "StreamOrderEvents") == 0, timeout=20)


def test_the_dashboard_is_served_and_its_absence_explained(web: Web) -> None:
    page = httpx.get(f"{web.url}/", timeout=CALL_TIMEOUT)
    assert page.status_code == 200 and page.text == INDEX
    assert page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{web.url}/no-such-file.js", timeout=CALL_TIMEOUT).status_code == 404

    index = web.root / "index.html"
    index.rename(web.root / "index.html.away")
    try:
        missing = httpx.get(f"{web.url}/", timeout=CALL_TIMEOUT)
        assert missing.status_code == 503
        assert "npm ci && npm run build" in missing.text and "make run" in missing.text
        # gRPC-web does not need the dashboard
        assert call(web, "SecurityService/WhoAmI", security_pb2.WhoAmIRequest(), web.daemon.admin_token).status == 0
    finally:
        (web.root / "index.html.away").rename(index)
    assert httpx.get(f"{web.url}/", timeout=CALL_TIMEOUT).status_code == 200


def test_a_web_port_in_use_stops_the_daemon_with_one_line_naming_the_setting(web: Web, tmp_path: Path) -> None:
    taken = web.url.rsplit(":", 1)[1]  # the running daemon's web port
    other = Daemon(tmp_path / "data", ROOT / "test-artifacts" / "daemon-web-port-taken.log")
    keys = f'web_listen = "127.0.0.1:{taken}"\n'
    other.config.write_text(config_text(other.grpc_port, other.metrics_port, server_extra=keys))
    with pytest.raises(RuntimeError, match="daemon exited with 2"):
        other.start()
    log = other.log_path.read_text()
    assert f"error: cannot listen on 127.0.0.1:{taken} (server.web_listen)" in log
    assert "Traceback" not in log


def test_stopping_the_daemon_ends_browser_streams_with_a_status(web: Web) -> None:
    """Last of the daemon's tests: it stops the daemon. A stream open through the proxy gets UNAVAILABLE in its
    trailers once the gRPC server's grace is over, instead of a cut connection, and the daemon exits cleanly."""
    daemon = web.daemon
    assert daemon.proc is not None
    request = portfolio_pb2.StreamPortfolioRequest(accounts=["alpha"], min_interval_ms=100)
    with stream(web, "PortfolioService/StreamPortfolio", request) as response:
        reader = FrameReader(response)
        assert reader.next()[0] == 0x00
        daemon.proc.send_signal(signal.SIGTERM)
        flags, payload = reader.next()
        while flags == 0x00:
            flags, payload = reader.next()
        assert flags == 0x80
        assert int(parse_trailers(payload)["grpc-status"]) == grpc.StatusCode.UNAVAILABLE.value[0]
    assert daemon.proc.wait(timeout=60) == 0


# The proxy in this process, over TLS, in front of a gRPC server that is not the daemon.

ECHO = "/test.Echo/Say"
COUNT = "/test.Echo/Count"


async def _say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.send_initial_metadata((("x-served-by", "echo"),))
    seen = dict(context.invocation_metadata() or ())
    context.set_trailing_metadata(
        (
            ("x-forwarded-for-seen", str(seen.get("x-forwarded-for", ""))),
            ("x-trace-seen", str(seen.get("x-trace", ""))),
            ("x-raw-bin", b"\x00\xff"),
            ("x-browser-headers-seen", ",".join(k for k in seen if k in ("x-grpc-web", "x-user-agent", "cookie"))),
        )
    )
    return request[::-1]


async def _count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()
    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "counted: 100% done")


@pytest.fixture
async def tls_proxy(tmp_path: Path) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    ca = CertAuthority(tmp_path, "web")
    issued = ca.issue("server", server=True)
    server = grpc.aio.server()
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(_say),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    credentials = grpc.ssl_server_credentials([(issued.key.read_bytes(), issued.cert.read_bytes())])
    grpc_port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    web_port = free_port()
    settings = ServerSettings(
        listen=f"0.0.0.0:{grpc_port}",  # the proxy must dial loopback, and check the certificate by its name
        web_listen=f"127.0.0.1:{web_port}",
        tls_cert_file=issued.cert,
        tls_key_file=issued.key,
        web_root=tmp_path / "no-dashboard",
    )
    web = WebServer(settings, ("127.0.0.1", web_port), ("0.0.0.0", grpc_port))
    await web.start()
    try:
        yield web.url, ssl.create_default_context(cafile=ca.cert)
    finally:
        web.close()
        await server.stop(0)
        await web.wait_closed()


async def test_the_proxy_serves_tls_and_carries_any_method_and_its_metadata(
    tls_proxy: tuple[str, ssl.SSLContext],
) -> None:
    url, trust = tls_proxy
    assert url.startswith("https://")
    sent = {"content-type": BINARY, "x-grpc-web": "1", "x-user-agent": "test", "x-trace": "t-1", "cookie": "a=b"}
    async with httpx.AsyncClient(verify=trust, timeout=CALL_TIMEOUT) as client:
        said = await client.post(f"{url}{ECHO}", content=b"\x00\x00\x00\x00\x03abc", headers=sent)
        counted = await client.post(f"{url}{COUNT}", content=b"\x00\x00\x00\x00\x013", headers=sent)
        dashboard = await client.get(f"{url}/")
    assert said.headers["x-served-by"] == "echo"
    messages, trailers = split_frames(said.content)
    assert messages == [b"cba"] and trailers["grpc-status"] == "0"
    assert trailers["x-forwarded-for-seen"] == "127.0.0.1" and trailers["x-trace-seen"] == "t-1"
    raw = trailers["x-raw-bin"]
    assert base64.b64decode(raw + "=" * (-len(raw) % 4)) == b"\x00\xff"
    assert trailers["x-browser-headers-seen"] == ""
    messages, trailers = split_frames(counted.content)
    assert messages == [b"0", b"1", b"2"]
    assert trailers["grpc-status"] == str(grpc.StatusCode.FAILED_PRECONDITION.value[0])
    assert unquote(trailers["grpc-message"]) == "counted: 100% done"
    assert dashboard.status_code == 503
