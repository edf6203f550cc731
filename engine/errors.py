"""Errors a request can end in, independent of transport; the API maps each to a gRPC status."""


class ApiError(Exception):
    """Base: the message is shown to the caller as is, so it must name what was wrong."""


class InvalidArgument(ApiError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(ApiError):
    pass


class FailedPrecondition(ApiError):
    pass
