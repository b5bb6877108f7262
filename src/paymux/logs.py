"""Log set-up: JSON lines or a readable console format, every line carrying the request id
and the transfer id (from :mod:`paymux.request_context`) whenever they are known.

``PAYMUX_LOG_FORMAT=json`` (one JSON object per line, for a log pipeline) or ``console``
(default). Libraries that would chatter on every request or start-up (httpx, Alembic,
uvicorn's access log) are held at WARNING unless ``PAYMUX_LOG_LEVEL=debug``.

Log messages never carry payee data or secrets: services log ids and statuses only.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from paymux.request_context import current_request_id, current_transfer_id

LogFormat = Literal["json", "console"]

# Per-request or per-start-up noise: useful only when debugging.
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "alembic",
    "alembic.runtime.migration",
    "uvicorn.access",
    "uvicorn.error",  # start-up banner lines; its warnings and errors still show
    "asyncio",
)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "transfer_id",
    "taskName",
}


class ContextFilter(logging.Filter):
    """Copies the request id and transfer id of the current context onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        if getattr(record, "transfer_id", None) is None:
            record.transfer_id = current_transfer_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "transfer_id"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """``13:05:01 INFO  paymux.service.transfers  transfer tr_… -> succeeded  [req=… tr=…]``."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ctx = []
        if (rid := getattr(record, "request_id", None)) is not None:
            ctx.append(f"req={rid}")
        if (tid := getattr(record, "transfer_id", None)) is not None:
            ctx.append(f"tr={tid}")
        line = (
            f"{self.formatTime(record, self.datefmt)} {record.levelname:<7} "
            f"{record.name}  {record.getMessage()}"
        )
        if ctx:
            line += "  [" + " ".join(ctx) + "]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_format() -> LogFormat:
    value = os.environ.get("PAYMUX_LOG_FORMAT", "console").strip().lower()
    return "json" if value == "json" else "console"


def configure(level: str | None = None, fmt: LogFormat | None = None) -> None:
    """Install one stderr handler on the root logger (replacing earlier ones)."""
    level_name = (level or os.environ.get("PAYMUX_LOG_LEVEL", "info")).upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if (fmt or log_format()) == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    quiet = logging.DEBUG if level_name == "DEBUG" else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    # uvicorn's own loggers propagate to ours instead of printing in their format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
