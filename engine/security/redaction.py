"""Keep secrets out of logs: a filter that rewrites each record's final text before any handler emits it.

Redaction works on the formatted message (msg % args), because a secret usually arrives as an argument
or inside an exception text, not in the format string. Known secrets (broker tokens, passwords) are
registered as they are loaded; the patterns catch what was never registered: our API tokens, and the
``access_token=...``, ``Authorization: token ...`` and ``Bearer ...`` shapes of broker HTTP traffic.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[REDACTED]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MIN_SECRET_LENGTH = 6  # shorter strings occur in ordinary text, and redacting them would mangle the log

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Our API tokens; the token id stays, since it names the token without granting anything.
    (re.compile(r"\b(tm_[0-9a-f]{12}_)[A-Za-z0-9_-]{16,}"), rf"\g<1>{REDACTED}"),
    # key=value in query strings and forms, "key": "value" in JSON bodies.
    (
        re.compile(
            r"""\b((?:access|refresh|request)_token|api_key|api_secret|client_secret|password)"""
            r"""(["']?\s*[:=]\s*["']?)[^\s"'&,;}]+""",
            re.IGNORECASE,
        ),
        rf"\g<1>\g<2>{REDACTED}",
    ),
    # Authorization headers: Kite's "token api_key:access_token", Bearer, Basic, or a bare value.
    (
        re.compile(r"""\b(authorization["']?\s*[:=]\s*["']?(?:(?:token|bearer|basic)\s+)?)[^\s"',;]+""", re.IGNORECASE),
        rf"\g<1>{REDACTED}",
    ),
    (re.compile(r"\b(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\g<1>{REDACTED}"),
)


class RedactSecrets(logging.Filter):
    """Replaces registered secrets and token shapes in the message, arguments and traceback text."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._known: re.Pattern[str] | None = None

    def register(self, secret: str) -> None:
        """Redact ``secret`` from now on; the pattern is swapped whole so logging threads never see it half-built."""
        if len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._secrets.add(secret)
            longest_first = sorted(self._secrets, key=len, reverse=True)
            self._known = re.compile("|".join(map(re.escape, longest_first)))

    def redact(self, text: str) -> str:
        known = self._known
        if known is not None:
            text = known.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only its text changes. Never raises, since that would fail the log call."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not leak its arguments through logging's error report
            message = f"{record.msg} [unformattable arguments: {record.args!r}]"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None, redactor: RedactSecrets | None = None) -> RedactSecrets:
    """Add one redactor to every handler of ``logger`` (the root logger by default) and return it.

    Handlers, not the logger: a logger's filters run only for records logged on that logger itself, not
    for records propagated up from child loggers such as ``engine.brokers.kite``, while every record that
    is emitted passes through a handler's filters. Call again with the same redactor after adding handlers.
    """
    target = logger or logging.getLogger()
    if not target.handlers:
        raise ValueError(f"logger {target.name!r} has no handlers yet; configure logging before installing redaction")
    redactor = redactor or RedactSecrets()
    for handler in target.handlers:
        if redactor not in handler.filters:
            handler.addFilter(redactor)
    return redactor


PROCESS_REDACTOR = RedactSecrets()  # one per process: logging is process-wide, and so is the set of secrets


def register(secret: str) -> None:
    """Redact ``secret`` from this process's logs, wherever in the process it was loaded or received."""
    PROCESS_REDACTOR.register(secret)


def install_process(level: int | str = logging.INFO) -> RedactSecrets:
    """Redact everything this process logs: the root logger's handlers and Ray's own (which does not propagate).

    A root logger without handlers gets a stderr one first (``level``, ``LOG_FORMAT``): a Ray worker starts with
    none, and records would then go to logging's last-resort handler, which no filter reaches.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
    install(redactor=PROCESS_REDACTOR)
    ray_logger = logging.getLogger("ray")
    if ray_logger.handlers:
        install(ray_logger, PROCESS_REDACTOR)
    return PROCESS_REDACTOR
