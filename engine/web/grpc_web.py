"""The gRPC-web wire format (grpc/doc/PROTOCOL-WEB.md): request bodies, response frames, trailers and headers.

Pure functions over bytes and header lists, so the protocol is tested without a server; proxy.py moves the
bytes between the browser and the gRPC port.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from engine.api.server import MAX_MESSAGE

_PREFIX = 5  # flags byte + 4-byte big-endian length
_DATA = 0x00
_COMPRESSED = 0x01
_TRAILERS = 0x80
_BINARY_TYPES = frozenset({"application/grpc-web", "application/grpc-web+proto"})
_TEXT_TYPES = frozenset({"application/grpc-web-text", "application/grpc-web-text+proto"})
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_KEY = re.compile(r"^[0-9a-z_.-]+$")
_BROWSER_ONLY = frozenset({"x-grpc-web", "x-user-agent"})  # the gRPC-web client's own, meaningless to the server
_NOT_METADATA = frozenset(
    {"connection", "content-length", "content-type", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
_PADDED_CHUNK_END = re.compile(rb"(?<==)(?=[^=])")

Metadata = list[tuple[str, str | bytes]]


class ProtocolError(Exception):
    """A request the proxy cannot forward; it is answered with this gRPC status, as the server would."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Encoding:
    """How one call's bodies travel: binary frames, or (text mode) the same frames in base64."""

    content_type: str
    text: bool

    @classmethod
    def of(cls, content_type: str) -> Encoding | None:
        """The encoding a request's Content-Type names; None if it is not gRPC-web with protobuf."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media in _TEXT_TYPES:
            return cls(media, text=True)
        if media in _BINARY_TYPES:
            return cls(media, text=False)
        return None

    @property
    def body_limit(self) -> int:
        """The most request body bytes worth reading: one frame of the largest message, base64 in text mode."""
        framed = _PREFIX + MAX_MESSAGE
        return 4 * -(-framed // 3) if self.text else framed

    def request_message(self, body: bytes) -> bytes:
        return single_message(decode_text(body) if self.text else body)

    def wire(self, chunk: bytes) -> bytes:
        """A response chunk as sent. Text mode encodes each chunk on its own, so the client decodes as it arrives."""
        return base64.b64encode(chunk) if self.text else chunk


def decode_text(body: bytes) -> bytes:
    """A grpc-web-text body: base64, possibly several padded chunks one after another."""
    try:
        return b"".join(_b64decode(chunk) for chunk in _PADDED_CHUNK_END.split(body))
    except (binascii.Error, ValueError):
        raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, "the grpc-web-text request body is not base64") from None


def _b64decode(chunk: bytes) -> bytes:
    return base64.b64decode(chunk + b"=" * (-len(chunk) % 4), validate=True)


def single_message(body: bytes) -> bytes:
    """The one message a request body frames. The daemon has no client-streaming methods, so one is all."""
    if len(body) < _PREFIX:
        raise ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request body is {len(body)} bytes; a gRPC-web message starts with a 5-byte prefix",
        )
    flags, length = body[0], int.from_bytes(body[1:_PREFIX], "big")
    if flags == _COMPRESSED:
        raise ProtocolError(grpc.StatusCode.UNIMPLEMENTED, "compressed messages are not supported; send them plain")
    if flags != _DATA:
        raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, f"frame flags 0x{flags:02x}: a request is one message")
    if length > MAX_MESSAGE:
        raise ProtocolError(
            grpc.StatusCode.RESOURCE_EXHAUSTED, f"the request message is {length} bytes; at most {MAX_MESSAGE}"
        )
    message = body[_PREFIX : _PREFIX + length]
    if len(message) < length:
        raise ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT, f"the request body ends {length - len(message)} bytes into its message"
        )
    if len(body) > _PREFIX + length:
        raise ProtocolError(
            grpc.StatusCode.UNIMPLEMENTED, "the request holds more than one message; no method streams requests"
        )
    return message


def data_frame(message: bytes) -> bytes:
    return _frame(_DATA, message)


def trailers_frame(code: int, details: str, trailing: Iterable[tuple[str, str | bytes]]) -> bytes:
    """The last frame of every response: the call's status and its trailing metadata, as HTTP/1.1-style lines."""
    lines = [f"grpc-status:{code}"]
    if details:
        lines.append(f"grpc-message:{percent_encode(details)}")
    lines += [f"{key}:{value}" for key, value in _header_values(trailing)]
    return _frame(_TRAILERS, "".join(f"{line}\r\n" for line in lines).encode("ascii"))


def _frame(flags: int, payload: bytes) -> bytes:
    return bytes([flags]) + len(payload).to_bytes(4, "big") + payload


def percent_encode(text: str) -> str:
    """grpc-message's encoding: UTF-8, with '%' and bytes outside printable ASCII as %XX."""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in text.encode())


def timeout_seconds(value: str) -> float:
    """A grpc-timeout header ("250m", "30S") in seconds."""
    match = _TIMEOUT.match(value.strip())
    if match is None:
        raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, f"grpc-timeout {value!r}: expected e.g. 30S or 500m")
    return int(match[1]) * _TIMEOUT_UNITS[match[2]]


def call_metadata(headers: Iterable[tuple[bytes, bytes]], client: str | None) -> tuple[Metadata, float | None]:
    """What of a request's headers the gRPC call carries: the token, custom x-* headers (-bin ones decoded), the
    browser's address appended to x-forwarded-for; and grpc-timeout as the call's timeout. HTTP's own headers and
    the gRPC-web client's markers stay behind."""
    metadata: Metadata = []
    forwarded: list[str] = []
    timeout = None
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "grpc-timeout":
            timeout = timeout_seconds(value)
        elif name == "x-forwarded-for":
            forwarded.append(value)
        elif name == "authorization" or (name.startswith("x-") and name not in _BROWSER_ONLY):
            metadata.append(_metadata_entry(name, value))
    if client:
        forwarded.append(client)
    if forwarded:
        metadata.append(_metadata_entry("x-forwarded-for", ", ".join(forwarded)))
    return metadata, timeout


def _metadata_entry(name: str, value: str) -> tuple[str, str | bytes]:
    if not _KEY.match(name):
        raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, f"header {name!r} cannot be gRPC metadata")
    if name.endswith("-bin"):
        try:
            return name, _b64decode(value.encode("latin-1"))
        except (binascii.Error, ValueError):
            raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, f"header {name}: a -bin value is base64") from None
    if not all(" " <= c <= "~" for c in value):
        raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, f"header {name}: only printable ASCII can be metadata")
    return name, value


def response_headers(initial: Iterable[tuple[str, str | bytes]]) -> list[tuple[bytes, bytes]]:
    """The server's initial metadata as response headers (-bin values in base64)."""
    return [(key.encode("ascii"), value.encode("ascii")) for key, value in _header_values(initial)]


def _header_values(metadata: Iterable[tuple[str, str | bytes]]) -> Iterable[tuple[str, str]]:
    """Metadata as text header lines, without what HTTP or the gRPC status frame already says."""
    for key, value in metadata:
        name = key.lower()
        if name.startswith(":") or name in _NOT_METADATA or name in ("grpc-status", "grpc-message"):
            continue
        if isinstance(value, bytes):
            yield name, base64.b64encode(value).decode("ascii").rstrip("=")
        else:
            yield name, value
