"""The Prometheus endpoint, behind the same API tokens as gRPC and under the API's TLS rules.

The metrics name accounts and show their order flow, so a scrape needs `Authorization: Bearer <token>`
(any role) like every RPC. prometheus_client's own server cannot check a header, hence this small WSGI
server around its app. Tokens are checked by the daemon's Authenticator on the daemon's event loop: it
shares the token cache and the database pool with the gRPC API, so a revocation applies to both at once.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from engine.api.auth import Authenticator
from engine.config import ServerSettings
from engine.errors import Unauthenticated
from engine.store.database import database_unreachable

AUTH_TIMEOUT_SECONDS = 10.0
"""A token check takes milliseconds; past this the daemon's loop is stuck or shutting down."""


def tls_context(server: ServerSettings) -> ssl.SSLContext | None:
    """The API's TLS for the metrics: its certificate and, with a client CA, a required client certificate."""
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    if server.tls_client_ca_file is not None:
        context.load_verify_locations(server.tls_client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class _QuietHandler(WSGIRequestHandler):
    """No access log line on stderr per scrape."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _TokenGate:
    """WSGI middleware: the wrapped app answers only requests bearing a valid API token."""

    def __init__(self, app: WSGIApplication, authenticator: Authenticator, loop: asyncio.AbstractEventLoop) -> None:
        self._app = app
        self._auth = authenticator
        self._loop = loop

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Runs in the server's worker thread; the Authenticator belongs to the daemon's loop.
        header = environ.get("HTTP_AUTHORIZATION")
        check = asyncio.run_coroutine_threadsafe(self._auth.authenticate(header), self._loop)
        try:
            check.result(timeout=AUTH_TIMEOUT_SECONDS)
        except Unauthenticated as exc:
            return _plain(start_response, "401 Unauthorized", str(exc), [("WWW-Authenticate", "Bearer")])
        except TimeoutError:
            check.cancel()
            return _plain(start_response, "503 Service Unavailable", "the token check timed out; try again", [])
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            why = f"the database is unreachable ({exc}), so the token cannot be checked; try again"
            return _plain(start_response, "503 Service Unavailable", why, [])
        return self._app(environ, start_response)


def _plain(start_response: StartResponse, status: str, reason: str, headers: list[tuple[str, str]]) -> list[bytes]:
    body = f"{reason}\n".encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), *headers])
    return [body]


class MetricsServer:
    """Serves the metrics from a daemon thread (a thread per request) until stop()."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        authenticator: Authenticator,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

        class Server(ThreadingWSGIServer):
            address_family = family  # so an IPv6 listen address binds too

        app = _TokenGate(make_wsgi_app(), authenticator, loop)
        self._httpd = make_server(str(sockaddr[0]), port, app, Server, _QuietHandler)
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True).start()

    def stop(self) -> None:
        """Stop accepting and close the socket; blocks up to half a second (the serve loop's poll interval)."""
        self._httpd.shutdown()
        self._httpd.server_close()
