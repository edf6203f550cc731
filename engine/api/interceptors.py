"""Server interceptors: map engine errors to gRPC statuses, and time every call.

grpc.aio interceptors can only swap the handler, so each wraps the handler's behaviour function,
keeping unary and streaming calls apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import ray.exceptions

from engine.api.metrics import OPEN_STREAMS, RPC_LATENCY
from engine.errors import (
    ApiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceUnavailable,
    Unauthenticated,
)
from engine.store.database import database_unreachable

log = logging.getLogger(__name__)

_CODES: dict[type[ApiError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ServiceUnavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, BaseException):
        exc = exc.cause  # an actor raised it: report the actor's error, not Ray's wrapper
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code, str(exc)
    if database_unreachable(exc):  # not logged here: the event pumps and the audit log report the outage
        why = str(exc) or type(exc).__name__
        return grpc.StatusCode.UNAVAILABLE, (
            f"the database is unreachable ({why}); nothing was acknowledged: retry once it is back"
            " (a PlaceOrder with the same client_order_id, which never places an order twice)"
        )
    if isinstance(exc, ray.exceptions.RayActorError):
        return grpc.StatusCode.UNAVAILABLE, "the account's actor is restarting; try again"
    log.exception("internal error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"


Behaviour = Callable[..., Any]


def rewrap(
    handler: grpc.RpcMethodHandler,
    unary: Callable[[Behaviour], Behaviour],
    stream: Callable[[Behaviour], Behaviour],
) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped: `unary` for unary calls, `stream` for server streams and
    bidirectional ones (server reflection). No RPC here takes a client stream, so one is refused rather than
    passed through unwrapped."""
    kinds = (
        (handler.unary_unary, unary, grpc.unary_unary_rpc_method_handler),
        (handler.unary_stream, stream, grpc.unary_stream_rpc_method_handler),
        (handler.stream_stream, stream, grpc.stream_stream_rpc_method_handler),
    )
    for behaviour, wrap, make in kinds:
        if behaviour is not None:
            return make(
                wrap(behaviour),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    raise RuntimeError("client-streaming RPCs are not supported by the interceptors")


class ErrorAndMetricsInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        return rewrap(handler, lambda b: _wrap_unary(method, b), lambda b: _wrap_stream(method, b))


def _wrap_unary(method: str, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as exc:
            code, message = status_for(exc)
            await context.abort(code, message)
        finally:
            RPC_LATENCY.labels(method, code.name).observe(time.perf_counter() - started)

    return call


def _wrap_stream(method: str, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        gauge = OPEN_STREAMS.labels(method)
        gauge.inc()
        try:
            async for item in behaviour(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = status_for(exc)
            await context.abort(code, message)
        finally:
            gauge.dec()

    return call
