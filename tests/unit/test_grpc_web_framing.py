"""The gRPC-web wire format (engine/web/grpc_web.py) byte by byte, and the settings that turn the web port on."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc
import pytest

from engine.api.server import MAX_MESSAGE
from engine.config import ConfigError, ServerSettings, load_settings
from engine.web.grpc_web import (
    Encoding,
    ProtocolError,
    call_metadata,
    data_frame,
    decode_text,
    percent_encode,
    response_headers,
    single_message,
    timeout_seconds,
    trailers_frame,
)
from engine.web.proxy import certificate_name
from tests.certs import CertAuthority


def refused(code: grpc.StatusCode, body: bytes) -> str:
    with pytest.raises(ProtocolError) as caught:
        single_message(body)
    assert caught.value.code == code
    return caught.value.message


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/grpc-web", False),
        ("application/grpc-web+proto", False),
        ("Application/gRPC-Web+proto; charset=utf-8", False),
        ("application/grpc-web-text", True),
        ("application/grpc-web-text+proto", True),
    ],
)
def test_content_types_choose_the_encoding(content_type: str, text: bool) -> None:
    encoding = Encoding.of(content_type)
    assert encoding is not None and encoding.text is text
    assert encoding.content_type == content_type.split(";")[0].lower()


@pytest.mark.parametrize("content_type", ["", "application/grpc", "application/grpc-web+json", "text/plain"])
def test_other_content_types_are_not_grpc_web(content_type: str) -> None:
    assert Encoding.of(content_type) is None


def test_one_framed_message_is_unwrapped() -> None:
    assert single_message(b"\x00\x00\x00\x00\x03abc") == b"abc"
    assert single_message(b"\x00\x00\x00\x00\x00") == b""  # an all-defaults message is empty


def test_malformed_bodies_are_refused_with_the_status_the_server_would_give() -> None:
    assert "compressed" in refused(grpc.StatusCode.UNIMPLEMENTED, b"\x01\x00\x00\x00\x01a")
    assert "0x80" in refused(grpc.StatusCode.INVALID_ARGUMENT, b"\x80\x00\x00\x00\x00")
    assert "5-byte prefix" in refused(grpc.StatusCode.INVALID_ARGUMENT, b"\x00\x00")
    assert "ends 2 bytes into" in refused(grpc.StatusCode.INVALID_ARGUMENT, b"\x00\x00\x00\x00\x05abc")
    assert "more than one message" in refused(grpc.StatusCode.UNIMPLEMENTED, b"\x00\x00\x00\x00\x01a" * 2)
    too_big = b"\x00" + (MAX_MESSAGE + 1).to_bytes(4, "big")
    assert str(MAX_MESSAGE) in refused(grpc.StatusCode.RESOURCE_EXHAUSTED, too_big)


def test_text_mode_decodes_base64_even_in_padded_pieces() -> None:
    frame = b"\x00\x00\x00\x00\x04abcd"
    assert decode_text(base64.b64encode(frame)) == frame
    pieces = base64.b64encode(frame[:4]) + base64.b64encode(frame[4:])  # "AAAAAA==" + "BGFiY2Q="
    assert b"=" in pieces[:-1]
    assert decode_text(pieces) == frame
    assert decode_text(base64.b64encode(frame).rstrip(b"=")) == frame  # unpadded
    encoding = Encoding.of("application/grpc-web-text")
    assert encoding is not None and encoding.request_message(base64.b64encode(frame)) == b"abcd"
    with pytest.raises(ProtocolError) as caught:
        decode_text(b"AAAA!AAA")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_body_limits_fit_the_largest_message_in_either_encoding() -> None:
    binary, text = Encoding.of("application/grpc-web"), Encoding.of("application/grpc-web-text")
    assert binary is not None and text is not None
    assert binary.body_limit == 5 + MAX_MESSAGE
    assert text.body_limit == len(base64.b64encode(b"\x00" * (5 + MAX_MESSAGE)))


def test_response_frames() -> None:
    assert data_frame(b"hi") == b"\x00\x00\x00\x00\x02hi"
    block = b"grpc-status:0\r\n"
    assert trailers_frame(0, "", ()) == b"\x80" + len(block).to_bytes(4, "big") + block
    frame = trailers_frame(3, "price: 'x€' 100%", [("x-request-id", "r1"), ("x-detail-bin", b"\x00\xff")])
    assert frame[0] == 0x80 and int.from_bytes(frame[1:5], "big") == len(frame) - 5
    assert frame[5:].decode("ascii").split("\r\n") == [
        "grpc-status:3",
        "grpc-message:price: 'x%E2%82%AC' 100%25",
        "x-request-id:r1",
        "x-detail-bin:AP8",
        "",
    ]
    text = Encoding.of("application/grpc-web-text")
    assert text is not None and text.wire(b"\x00\x00\x00\x00\x01a") == b"AAAAAAFh"


def test_percent_encoding_keeps_printable_ascii() -> None:
    assert percent_encode("missing API token: send 'authorization'") == "missing API token: send 'authorization'"
    assert percent_encode("50% ü\n") == "50%25 %C3%BC%0A"


@pytest.mark.parametrize(
    ("header", "seconds"), [("1S", 1.0), ("250m", 0.25), ("2M", 120.0), ("1H", 3600.0), ("5u", 5e-6), ("7n", 7e-9)]
)
def test_grpc_timeout_units(header: str, seconds: float) -> None:
    assert timeout_seconds(header) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["", "1", "S", "1s", "123456789S", "-1S", "1.5S"])
def test_malformed_grpc_timeouts_are_refused(header: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        timeout_seconds(header)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in values.items()]


def test_request_headers_become_metadata_and_timeout() -> None:
    headers = _headers(
        host="127.0.0.1:8080",
        content_type="application/grpc-web+proto",
        content_length="5",
        connection="keep-alive",
        cookie="session=1",
        user_agent="Mozilla/5.0",
        origin="http://localhost:5173",
        authorization="Bearer tm_abc",
        grpc_timeout="30S",
        x_grpc_web="1",
        x_user_agent="grpc-web-javascript/0.1",
        x_request_id="r-1",
        x_trace_bin=base64.b64encode(b"\x01\x02").decode(),
    )
    metadata, timeout = call_metadata(headers, "10.0.0.7")
    assert timeout == 30.0
    assert metadata == [
        ("authorization", "Bearer tm_abc"),
        ("x-request-id", "r-1"),
        ("x-trace-bin", b"\x01\x02"),
        ("x-forwarded-for", "10.0.0.7"),
    ]


def test_the_browser_address_is_appended_to_x_forwarded_for() -> None:
    metadata, timeout = call_metadata(_headers(x_forwarded_for="203.0.113.9"), "127.0.0.1")
    assert metadata == [("x-forwarded-for", "203.0.113.9, 127.0.0.1")] and timeout is None
    assert call_metadata([], None) == ([], None)


@pytest.mark.parametrize(
    ("name", "value"), [(b"x-bad\xff", b"1"), (b"x-note", "caf\u00e9".encode("latin-1")), (b"x-data-bin", b"!!")]
)
def test_headers_that_cannot_be_metadata_are_refused(name: bytes, value: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        call_metadata([(name, value)], None)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_initial_metadata_becomes_response_headers() -> None:
    initial = [("x-served-by", "a"), ("content-type", "application/grpc"), ("x-blob-bin", b"\xff"), (":status", "200")]
    assert response_headers(initial) == [(b"x-served-by", b"a"), (b"x-blob-bin", b"/w")]


def test_serve_web_turns_the_port_on_at_the_default_or_the_configured_address() -> None:
    assert ServerSettings().web_listen == ""
    assert ServerSettings().with_web().web_listen == "127.0.0.1:8080"
    assert ServerSettings(web_listen="0.0.0.0:9000").with_web().web_listen == "0.0.0.0:9000"
    assert ServerSettings().web_cors_origins == ["*"]


def test_web_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nweb_listen = "8080"\n')
    with pytest.raises(ConfigError, match=r"server\.web_listen"):
        load_settings(config)


def test_the_proxy_cannot_do_mutual_tls(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path, "unit")
    server = ca.issue("server", server=True)
    mutual = {"tls_cert_file": server.cert, "tls_key_file": server.key, "tls_client_ca_file": ca.cert}
    with pytest.raises(ValueError, match=r"web_listen cannot be used with tls_client_ca_file.*deploy/envoy.yaml"):
        ServerSettings(web_listen="127.0.0.1:8080", **mutual)
    with pytest.raises(ConfigError, match="tls_client_ca_file"):
        ServerSettings(**mutual).with_web()
    assert certificate_name(server.cert) == "localhost"  # the first DNS name: what the proxy checks it against
