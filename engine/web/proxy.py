"""The gRPC-web proxy: each browser call becomes the same call on the daemon's own gRPC port.

Every method is called generically, bytes in and bytes out, as a bidirectional stream: one request message
then a half-close is what a unary and a server-streaming method both expect, so the proxy knows no service
and the gRPC server's interceptors (tokens, roles, rate limits, audit, metrics) see every call as they would
any client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from engine.api.server import MAX_MESSAGE
from engine.config import ServerSettings
from engine.web.grpc_web import (
    Encoding,
    ProtocolError,
    call_metadata,
    data_frame,
    response_headers,
    trailers_frame,
)


class _Disconnected(Exception):
    """The browser went away before its request was read."""


def upstream_channel(server: ServerSettings, host: str, port: int) -> grpc.aio.Channel:
    """A channel to the gRPC server listening on host:port (loopback when it listens on every address), over TLS
    trusting the server's own certificate when it serves TLS."""
    target = _loopback_if_wildcard(host)
    address = f"[{target}]:{port}" if ":" in target else f"{target}:{port}"
    options: list[tuple[str, str | int]] = [("grpc.max_receive_message_length", -1)]  # the browser takes any size
    if server.tls_cert_file is None:
        return grpc.aio.insecure_channel(address, options=options)
    certificate = server.tls_cert_file.read_bytes()
    options.append(("grpc.ssl_target_name_override", certificate_name(server.tls_cert_file)))
    return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(certificate), options=options)


def _loopback_if_wildcard(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if not address.is_unspecified:
        return host
    return "::1" if address.version == 6 else "127.0.0.1"


def certificate_name(cert_file: Path) -> str:
    """A name the server's certificate holds (its first DNS name, else IP address, else common name), to check it
    against: the proxy reaches the server by whatever address works, and trusts exactly that certificate."""
    leaf = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    with contextlib.suppress(x509.ExtensionNotFound):
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for kind in (x509.DNSName, x509.IPAddress):
            found = names.get_values_for_type(kind)
            if found:
                return str(found[0])
    common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else ""


class GrpcWebProxy:
    """ASGI app for POST /<package.Service>/<Method>: reads the one request message, calls the method, and
    answers HTTP 200 with the server's messages as they come and the status in a closing trailers frame."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        encoding = Encoding.of(headers.get(b"content-type", b"").decode("latin-1"))
        if encoding is None:
            reason = "expected Content-Type application/grpc-web(+proto) or application/grpc-web-text(+proto)\n"
            await PlainTextResponse(reason, 415)(scope, receive, send)
            return
        reply = _Reply(send, encoding)
        client = scope.get("client")
        try:
            message = encoding.request_message(await _body(receive, encoding.body_limit))
            metadata, timeout = call_metadata(scope["headers"], client[0] if client else None)
        except ProtocolError as exc:
            await reply.status_only(exc.code, exc.message)
            return
        except _Disconnected:
            return
        method = self._channel.stream_stream(scope["path"], request_serializer=None, response_deserializer=None)
        call = method(iter((message,)), metadata=metadata, timeout=timeout)
        try:
            await _unless_disconnected(receive, _relay(call, reply))
        finally:
            call.cancel()  # still open if the browser left or uvicorn gave up on this call at shutdown


async def _body(receive: Receive, limit: int) -> bytes:
    body = bytearray()
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            raise _Disconnected
        body += event.get("body", b"")
        if len(body) > limit:
            raise ProtocolError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the request body is over {limit} bytes: a request is one message of at most {MAX_MESSAGE} bytes",
            )
        if not event.get("more_body", False):
            return bytes(body)


async def _unless_disconnected(receive: Receive, relay: Awaitable[None]) -> None:
    """Run the relay until it ends or the browser disconnects, whichever comes first. Watching receive() is what
    notices a browser gone from a quiet stream: sends to it would only be dropped, and there may be none for hours."""
    relaying = asyncio.ensure_future(relay)
    watching = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait((relaying, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        relaying.cancel()
        watching.cancel()
    if relaying.done() and not relaying.cancelled():
        relaying.result()  # re-raise a failure of the relay itself


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _relay(call: grpc.aio.StreamStreamCall, reply: _Reply) -> None:
    """Headers once the server sends its initial metadata, each message as it arrives, then the trailers."""
    await reply.start(await call.initial_metadata())
    with contextlib.suppress(grpc.aio.AioRpcError):  # a failed call: its status goes in the trailers
        async for message in call:
            await reply.send(data_frame(message))
    code = await call.code()
    await reply.finish(code.value[0], await call.details() or "", await call.trailing_metadata() or ())


class _Reply:
    """One HTTP response in the request's encoding."""

    def __init__(self, send: Send, encoding: Encoding) -> None:
        self._send = send
        self._encoding = encoding

    async def start(self, initial: grpc.aio.Metadata | tuple[()]) -> None:
        headers = [(b"content-type", self._encoding.content_type.encode()), *response_headers(initial or ())]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def send(self, chunk: bytes, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": self._encoding.wire(chunk), "more_body": more})

    async def finish(self, code: int, details: str, trailing: grpc.aio.Metadata | tuple[()]) -> None:
        await self.send(trailers_frame(code, details, trailing), more=False)

    async def status_only(self, code: grpc.StatusCode, details: str) -> None:
        """A call refused before it reached the server: no messages, just its status."""
        await self.start(())
        await self.finish(code.value[0], details, ())
