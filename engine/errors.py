"""Errors a request can end in, independent of transport; the API maps each to a gRPC status."""


class ApiError(Exception):
    """Base: the message is shown to the caller as is, so it must name what was wrong."""


class InvalidArgument(ApiError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Rebuild from both parts, so the error survives crossing a Ray actor boundary."""
        return type(self), (self.field, self.problem)


class NotFound(ApiError):
    pass


class FailedPrecondition(ApiError):
    pass


class ServiceUnavailable(ApiError):
    """Nothing was done; the same request may succeed later (an account's broker is unreachable)."""


class ResourceExhausted(ApiError):
    """Too much at once: a queue or a rate limit is full; nothing was done."""


class Unauthenticated(ApiError):
    """The caller presented no valid API token."""


class PermissionDenied(ApiError):
    """The caller is known but its role or its accounts do not cover this request."""
