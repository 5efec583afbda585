"""JSON lines on stdout, the only log stream: CloudWatch (awslogs) stamps each line's time."""

import json
import logging
import sys
from typing import Any


def write_event(event: str, **fields: object) -> None:
    """One lifecycle line, e.g. {"event":"listening","port":8000}."""
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class JsonFormatter(logging.Formatter):
    """Formats granian's own warnings and errors as JSON lines like the app's."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


# Replaces granian's text logging (passed as `log_dictconfig`). Its access log stays off:
# the app writes its own request lines.
GRANIAN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "loggers": {"_granian": {"handlers": ["stdout"], "propagate": False}},
}
