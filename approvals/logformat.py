"""Where log lines go and how they look, set once at the start of every `approvals` command.

    JsonFormatter       one JSON object per line: time (UTC, ISO-8601), level, logger, message,
                        exception, and every extra field of the record
    JsonStreamHandler   a plain stream handler Prefect's logging config can name in place of
                        its Rich console handler (which would rewrite `:emoji:` codes)
    configure_logging   the root handler for APPROVALS_LOG_FORMAT; in json mode Prefect's
                        console handlers follow, in this process and in those it starts

Our own formatter rather than python-json-logger: the shape is a dozen lines of stdlib, and
the class is named by dotted path in the environment of flow-run processes Prefect starts, so
it must be importable wherever slack-approvals is, with no second dependency to keep in step.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from .settings import LogFormat

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from `extra=` (or Prefect's
# run context) and is written as a field of its own.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}
# Prefect's logging.yml, overridden through its PREFECT_LOGGING_* variables: its console
# handler becomes a plain stream with our formatter, as does the handler of its internal
# debug logger. Set in the environment, so flow-run processes that `approvals serve` or a
# worker starts inherit them; a value the operator set is left alone.
_PREFECT_JSON = {
    "PREFECT_LOGGING_FORMATTERS_JSON_CLASS": f"{__name__}.JsonFormatter",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS": f"{__name__}.JsonStreamHandler",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER": "json",
    "PREFECT_LOGGING_HANDLERS_DEBUG_FORMATTER": "json",
}
# Loggers that speak at INFO on every call (one line per HTTP request to the Prefect API).
_CHATTY = ("httpx", "httpcore")


def utc_iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks are
    escaped, and so is any non-ASCII character, so no log shipper splits a record)."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%",
                 validate: bool = True, *, defaults: Mapping[str, Any] | None = None) -> None:
        # logging.config passes the `format` of the config it reads (Prefect's says
        # "default"); the shape here is fixed, so all of it is accepted and none of it used.
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": utc_iso(record.created), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        extras = {key: value for key, value in record.__dict__.items()
                  if key not in _RECORD_FIELDS and key not in line}
        try:
            return json.dumps({**line, **extras}, default=str)
        except (TypeError, ValueError):  # a key json cannot write, or a value that holds itself
            return json.dumps({**line, **{key: repr(value) for key, value in extras.items()}})


class JsonStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A plain stream handler that takes (and ignores) the `styles` Prefect's config gives its
    console handler, so that config can name this class instead."""

    def __init__(self, stream: TextIO | None = None,
                 styles: Mapping[str, str] | None = None) -> None:
        super().__init__(stream)


def configure_logging(log_format: LogFormat, level: int | None = None) -> None:
    """Set up the root handler for `log_format`.

    `level` None keeps the levels as they are (WARNING for the root, Prefect's own for
    `prefect.*`): commands that print results keep stderr for problems. A service passes
    logging.INFO. In text mode without a level nothing changes: the first library to log
    (Prefect, if loaded) formats its lines as it always has.

    Called before Prefect is imported, the root handler set here is the one Prefect keeps (its
    config leaves a root handler of the application alone); called after, the console handlers
    Prefect already made are given the JSON formatter here."""
    if log_format == "text" and level is None:
        return
    root = logging.getLogger()
    formatter: logging.Formatter = (JsonFormatter() if log_format == "json"
                                    else logging.Formatter(TEXT_FORMAT))
    handler = JsonStreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    if level is not None:
        root.setLevel(level)
        for name in _CHATTY:
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
    if log_format == "json":
        logging.captureWarnings(True)  # a warning is a record too, not a bare line on stderr
        for name, value in _PREFECT_JSON.items():
            os.environ.setdefault(name, value)
        _reformat_console_handlers(formatter)


def _reformat_console_handlers(formatter: logging.Formatter) -> None:
    """Handlers already writing to the terminal (Prefect's, uvicorn's) write JSON from now on."""
    terminal = {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in terminal:
                handler.setFormatter(formatter)
