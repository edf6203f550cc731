"""Log redaction: registered secrets and token shapes vanish from what handlers emit, child loggers included."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from engine.security.redaction import REDACTED, RedactSecrets, install

API_TOKEN = "tm_0123456789ab_" + "Secr3t-value_" * 3 + "abcd"


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, ListHandler, RedactSecrets]]:
    parent = logging.getLogger("tm_test_redaction")
    handler = ListHandler()
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    parent.propagate = False
    redactor = install(parent)
    yield parent, handler, redactor
    parent.removeHandler(handler)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (f"login with {API_TOKEN}", f"login with tm_0123456789ab_{REDACTED}"),
        (
            "GET /portfolio?access_token=abc123XYZ&api_key=kite1",
            f"GET /portfolio?access_token={REDACTED}&api_key={REDACTED}",
        ),
        (
            'body {"access_token": "abc123XYZ", "user": "ZD0001"}',
            f'body {{"access_token": "{REDACTED}", "user": "ZD0001"}}',
        ),
        ("refresh_token=r3fr3sh; request_token=rq", f"refresh_token={REDACTED}; request_token={REDACTED}"),
        ("Authorization: token kite1:abc123XYZ", f"Authorization: token {REDACTED}"),
        ("headers={'Authorization': 'Bearer eyJhbGciOi.x.y'}", f"headers={{'Authorization': 'Bearer {REDACTED}'}}"),
        ("authorization=Basic dXNlcjpwYXNz", f"authorization=Basic {REDACTED}"),
        ("sent bearer eyJhbGciOi.x.y to upstox", f"sent bearer {REDACTED} to upstox"),
        ("token expired for tm_order_status_handler", "token expired for tm_order_status_handler"),
    ],
)
def test_shapes_are_redacted(message: str, expected: str) -> None:
    assert RedactSecrets().redact(message) == expected


def test_redaction_is_idempotent() -> None:
    redactor = RedactSecrets()
    once = redactor.redact(f"Authorization: Bearer abc.def access_token=x1 {API_TOKEN}")
    assert redactor.redact(once) == once


def test_registered_secrets_are_replaced_longest_first() -> None:
    redactor = RedactSecrets()
    redactor.register("hunter2pass")
    redactor.register("hunter2passWORD")
    redactor.register("abc")  # too short to redact safely: ignored
    assert redactor.redact("pw hunter2passWORD then hunter2pass, abc") == f"pw {REDACTED} then {REDACTED}, abc"


def test_arguments_are_formatted_then_redacted(logged: tuple[logging.Logger, ListHandler, RedactSecrets]) -> None:
    logger, handler, redactor = logged
    redactor.register("pa55word-zd0001")
    logger.info("login %s with %r", "ZD0001", "pa55word-zd0001")
    logger.info("call %(url)s", {"url": "https://api/x?access_token=abc123"})
    assert handler.lines == [f"login ZD0001 with '{REDACTED}'", f"call https://api/x?access_token={REDACTED}"]


def test_child_logger_records_are_redacted(logged: tuple[logging.Logger, ListHandler, RedactSecrets]) -> None:
    logger, handler, _ = logged
    logger.getChild("brokers.kite").warning("retry with %s", API_TOKEN)
    assert handler.lines == [f"retry with tm_0123456789ab_{REDACTED}"]


def test_exception_text_is_redacted(logged: tuple[logging.Logger, ListHandler, RedactSecrets]) -> None:
    logger, handler, _ = logged
    try:
        raise RuntimeError(f"401 for Authorization: token kite1:abc123XYZ and {API_TOKEN}")
    except RuntimeError:
        logger.exception("broker call failed")
    assert "abc123XYZ" not in handler.lines[0] and "Secr3t" not in handler.lines[0]
    assert "RuntimeError: 401 for Authorization: token [REDACTED]" in handler.lines[0]


def test_bad_format_arguments_do_not_raise_or_leak(logged: tuple[logging.Logger, ListHandler, RedactSecrets]) -> None:
    logger, handler, _ = logged
    logger.info("two %s %s", "access_token=abc123")
    assert handler.lines == [f"two %s %s [unformattable arguments: ('access_token={REDACTED}',)]"]


def test_install_needs_handlers_and_reuses_the_redactor() -> None:
    bare = logging.getLogger("tm_test_redaction_bare")
    with pytest.raises(ValueError, match="no handlers"):
        install(bare)
    first, second = logging.NullHandler(), logging.NullHandler()
    bare.addHandler(first)
    try:
        redactor = install(bare)
        bare.addHandler(second)
        assert install(bare, redactor) is redactor
        assert first.filters == [redactor] and second.filters == [redactor]
    finally:
        bare.removeHandler(first)
        bare.removeHandler(second)


def test_install_defaults_to_the_root_logger() -> None:
    root = logging.getLogger()
    handler = ListHandler()
    root.addHandler(handler)
    try:
        redactor = install()
        assert all(redactor in h.filters for h in root.handlers)
    finally:
        for h in root.handlers:
            h.removeFilter(redactor)
        root.removeHandler(handler)
