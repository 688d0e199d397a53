"""Logging: one configuration for digitgen's loggers and uvicorn's, text or JSON lines on stderr, at
DIGITGEN_LOG_LEVEL / DIGITGEN_LOG_FORMAT. Requests are logged once, by MetricsMiddleware on "digitgen.access"
(uvicorn's access log is off); records logged while serving a request carry its `request_id`."""
from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar

from service.config import Settings

ACCESS_LOGGER = "digitgen.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# JSON lines: {"time": ISO 8601 UTC, "level", "logger", "message", then the record's extra fields}
JSON_FORMATTER = {
    "()": "service.logs.json_formatter",
    "fmt": ["levelname", "name", "message"],
    "rename_fields": {"levelname": "level", "name": "logger"},
    "timestamp": "time",
}

# the X-Request-ID of the request this task is serving (bytes, as sent), set by MetricsMiddleware
current_request_id: ContextVar[bytes | None] = ContextVar("digitgen_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Gives records logged while a request is served that request's id (`request_id`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id.decode("ascii")
        return True


def json_formatter(**options) -> logging.Formatter:
    """python-json-logger's JsonFormatter, with the time as the first field of each line. The standard
    LogRecord attributes, Python 3.12's taskName and uvicorn's ANSI-coloured copy of a message stay out."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    class TimeFirst(JsonFormatter):
        def add_fields(self, log_data, record, message_dict):
            log_data[self.timestamp] = None  # holds the first place; the base class fills it in
            super().add_fields(log_data, record, message_dict)

    return TimeFirst(**options, reserved_attrs=[*RESERVED_ATTRS, "taskName", "color_message"])


def logging_config(level: str = "info", fmt: str = "text", access_log: bool = True) -> dict:
    """A logging.config.dictConfig dictionary (uvicorn's `log_config`). `access_log=False` silences
    "digitgen.access", so the middleware skips building the line (it checks isEnabledFor first)."""
    level = level.upper()
    formatter = dict(JSON_FORMATTER) if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "service.logs.RequestIdFilter"}},
        "formatters": {"digitgen": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "digitgen", "filters": ["request_id"]}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers keep their levels but no handlers of their own: their records
            # reach the root handler, in our format
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},  # replaced by digitgen.access
            # on: follows the root level (so --log-level warning hides it, as it did uvicorn's)
            ACCESS_LOGGER: {"level": "NOTSET" if access_log else "CRITICAL", "handlers": [], "propagate": True},
        },
    }


def configure_if_unset(settings: Settings) -> bool:
    """The service's logging, unless the root logger has a handler already (python -m service, a test runner).
    For `uvicorn service.main:app`: our access log is on when uvicorn's was. True if applied."""
    if logging.getLogger().handlers:
        return False
    access_log = bool(logging.getLogger("uvicorn.access").handlers)
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format, access_log))
    return True
