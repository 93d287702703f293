"""structlog configuration: JSON lines on stdout, configured once per process.

Business code only calls ``structlog.get_logger()``. The service name is added
to every line by a processor; the consumer edge clears and binds
``event_id`` and ``document_id`` per message. Libraries that log through the
standard library (uvicorn, aiosmtpd, pyHanko) come out as the same JSON lines.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging"]

_QUIET = {"pyhanko": logging.ERROR, "mail.log": logging.WARNING, "uvicorn.error": logging.WARNING}


def configure_logging(
    service: str, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None, *, replica: int | None = None
) -> None:
    """Logs as ``fmt`` (json, or console for people) to ``stream`` (default: standard output); with ``replica``,
    every line says which of the service's processes wrote it."""
    out = stream or sys.stdout

    def add_service(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        if replica is not None:
            event.setdefault("replica", replica)
        return event

    shared = [
        add_service,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, quiet_level in _QUIET.items():
        logging.getLogger(name).setLevel(quiet_level)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
