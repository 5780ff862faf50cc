"""Structured JSON logs (structlog over the stdlib), with secrets scrubbed from every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

# Anything that looks like a credential: Basic/Bearer headers, whsec_ secrets, 40-hex API keys,
# and passwords inside URLs.
_SECRET_PATTERNS = [
    (
        re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)\s+[^\s'\",}]+"),
        r"\1\2 [redacted]",
    ),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_[redacted]"),
    (re.compile(r"\b[0-9A-Fa-f]{40}\b"), "[redacted-key]"),
    (re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@"), r"\1[redacted]@"),
]
_SECRET_KEYS = re.compile(r"(?i)(secret|token|password|api_key|authorization|hmac|signature|dsn)")


def scrub_text(value: str) -> str:
    for pattern, repl in _SECRET_PATTERNS:
        value = pattern.sub(repl, value)
    return value


def scrub(value: Any, key: str = "") -> Any:
    """Redact secrets in any nested structure (log events, Sentry events)."""
    if key and _SECRET_KEYS.search(key):
        return "[redacted]"
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _scrub_processor(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    scrubbed: Mapping[str, Any] = scrub(event)
    return scrubbed


class _ScrubFilter(logging.Filter):
    """Stdlib loggers (Celery, urllib3, requests) bypass structlog: scrub them here."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub_text(record.getMessage())
        record.args = None
        if record.exc_info:
            import traceback

            record.msg += "\n" + scrub_text("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


_configured = False


def configure_logging(level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    _configured = True
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ScrubFilter())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_processor,  # after format_exc_info, so tracebacks are scrubbed too
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
