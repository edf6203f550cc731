"""The daemon's HTTP port for browsers (server.web_listen): gRPC-web proxied to the gRPC port, and the dashboard.

uvicorn runs in the daemon's own event loop, next to the gRPC server, so the proxy's calls cost no thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from engine.api.metrics_http import tls_context
from engine.api.server import CannotListen
from engine.config import ServerSettings
from engine.web.proxy import GrpcWebProxy, upstream_channel

DASHBOARD_BUILD = Path(__file__).resolve().parents[2] / "clients" / "web" / "dist"
"""Where `npm run build` in clients/web puts the dashboard: the default of server.web_root."""

NOT_BUILT = (
    "The dashboard is not built: run `make run`, or `npm ci && npm run build` in clients/web"
    " (or point server.web_root at a built one). gRPC-web works meanwhile.\n"
)
CORS_REQUEST_HEADERS = ("authorization", "content-type", "grpc-timeout", "x-grpc-web", "x-user-agent")
CORS_EXPOSED_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin")


class Dashboard:
    """ASGI app serving the built dashboard's files; until it is built, a 503 saying how to build it. Checked per
    request, so a build made while the daemon runs is served without a restart."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._files = StaticFiles(directory=root, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self._root / "index.html").is_file():
            await self._files(scope, receive, send)
        else:
            await PlainTextResponse(NOT_BUILT, 503)(scope, receive, send)


def web_app(channel: grpc.aio.Channel, web_root: Path, cors_origins: list[str]) -> Starlette:
    """gRPC-web at POST /<package.Service>/<Method>, the dashboard at every other path, CORS on both."""
    cors = Middleware(
        CORSMiddleware,
        allow_origins=cors_origins,
        allow_methods=("GET", "POST", "OPTIONS"),
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
    )
    routes = [
        Route("/{service}/{method}", GrpcWebProxy(channel), methods=["POST"]),
        Mount("/", app=Dashboard(web_root)),
    ]
    return Starlette(routes=routes, middleware=[cors])


class _InLoopServer(uvicorn.Server):
    """uvicorn as one part of the daemon: it leaves SIGINT/SIGTERM to the daemon's handlers (its own would replace
    them while it runs), and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class WebServer:
    """The web port, from start() to close() and wait_closed()."""

    def __init__(self, settings: ServerSettings, web: tuple[str, int], grpc_server: tuple[str, int]) -> None:
        self._settings = settings
        self._address = web
        self._channel = upstream_channel(settings, *grpc_server)
        app = web_app(self._channel, settings.web_root or DASHBOARD_BUILD, settings.web_cors_origins)
        tls = tls_context(settings)  # never asks for client certificates: the settings refuse a client CA with web
        self._server = _InLoopServer(
            uvicorn.Config(
                app,
                log_config=None,  # the daemon's logging (and its redaction) handles uvicorn's records too
                log_level="warning",
                access_log=False,
                proxy_headers=False,  # the browser's own address, for x-forwarded-for, whatever headers it sends
                lifespan="off",
                ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None,
                # streams stay open until the gRPC server's stop ends them; this bounds the wait if one does not
                timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds) + 5,
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host, port = self._address
        scheme = "https" if self._settings.tls_cert_file is not None else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    async def start(self) -> None:
        """Listen, and return once connections are accepted; raises CannotListen if the address cannot be bound."""
        host, port = self._address
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        try:
            listener = socket.create_server((host, port), family=family)
        except OSError as exc:
            where = self._settings.web_listen
            raise CannotListen(f"cannot listen on {where} (server.web_listen): {exc.strerror}") from exc
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]), name="web-server")
        listening = asyncio.ensure_future(self._server.listening.wait())
        await asyncio.wait((self._task, listening), return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if self._task.done():
            self._task.result()  # it failed to start: say why

    def close(self) -> None:
        """Stop accepting; calls in progress go on (streams until the gRPC server's stop ends them)."""
        self._server.should_exit = True

    async def wait_closed(self) -> None:
        if self._task is not None:
            await self._task
        await self._channel.close()
