"""structlog set-up shared by the operator and the CLI, with a last-line secret filter."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Patterns that look like Slack credentials. Secrets should never reach a log call at all; this
# is a belt-and-braces filter for the case where one arrives inside an exception message.
_SECRET_PATTERNS = (
    re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"),
    re.compile(r"xox[abprs]-[A-Za-z0-9-]+"),
)


def redact(text: str) -> str:
    for pat in _SECRET_PATTERNS:
        text = pat.sub("<redacted>", text)
    return text


def _redact_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


def configure(fmt: str = "json", level: str = "INFO") -> None:
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
