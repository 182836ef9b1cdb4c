"""A queue's business hours: their shape, and whether a moment is inside them (pure, no I/O).

Hours are wall-clock times in the tenant's time zone, per weekday: `{"mon": [["09:00", "12:30"],
["13:30", "18:00"]], "sat": [["10:00", "14:00"]]}`. A day left out is closed; `"24:00"` ends a day; an
interval never crosses midnight (write two). Wall-clock arithmetic follows the zone's daylight-saving rules.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, ConfigDict, RootModel, WithJsonSchema, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
# How far back to look for the moment a queue closed; a queue open on no day has been closed "forever".
_LOOK_BACK_DAYS = 8
NEVER_OPEN_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def _clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError("must be a time of day as HH:MM (00:00 to 24:00)")
    return value


# The pattern documents the format in the OpenAPI schema; the validator gives the reason a person reads.
Clock = Annotated[str, WithJsonSchema({"type": "string", "pattern": _CLOCK.pattern}), AfterValidator(_clock)]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class DayHours(RootModel[list[tuple[Clock, Clock]]]):
    @model_validator(mode="after")
    def _ordered(self) -> DayHours:
        spans = sorted((_minutes(a), _minutes(b)) for a, b in self.root)
        for start, end in spans:
            if start >= end:
                raise ValueError("each interval must end after it starts, on the same day")
        for (_, end), (start, _) in pairwise(spans):
            if start < end:
                raise ValueError("intervals of one day must not overlap")
        if len(spans) > 12:
            raise ValueError("at most 12 intervals a day")
        return self


class BusinessHours(RootModel[dict[Weekday, DayHours]]):
    """Opening intervals per weekday; a day left out is closed all day."""

    model_config = ConfigDict(frozen=True)

    def spans(self, weekday: int) -> list[tuple[int, int]]:
        """The day's intervals (Monday is 0) as minutes after local midnight, in order."""
        day = self.root.get(WEEKDAYS[weekday])
        return sorted((_minutes(a), _minutes(b)) for a, b in day.root) if day else []


def _local_spans(hours: BusinessHours, zone: ZoneInfo, day: date) -> list[tuple[datetime, datetime]]:
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    # Aware arithmetic on one zone is wall-clock arithmetic; converting to UTC applies that day's offset.
    return [
        ((midnight + timedelta(minutes=a)).astimezone(UTC), (midnight + timedelta(minutes=b)).astimezone(UTC))
        for a, b in hours.spans(day.weekday())
    ]


def closed_since(hours: BusinessHours, zone_name: str, at: datetime) -> datetime | None:
    """None while `at` is within the hours; else when the queue last closed (NEVER_OPEN_SINCE if it has not
    been open for over a week)."""
    zone = ZoneInfo(zone_name)
    today = at.astimezone(zone).date()
    latest_end: datetime | None = None
    for back in range(_LOOK_BACK_DAYS):
        for start, end in _local_spans(hours, zone, today - timedelta(days=back)):
            if start <= at < end:
                return None
            if end <= at and (latest_end is None or end > latest_end):
                latest_end = end
        if latest_end is not None:
            return latest_end
    return NEVER_OPEN_SINCE


def next_change(hours: BusinessHours, zone_name: str, at: datetime) -> datetime | None:
    """When the queue next opens or closes after `at` (within a week), or None if it never does."""
    zone = ZoneInfo(zone_name)
    today = at.astimezone(zone).date()
    edges = sorted(
        edge
        for ahead in range(-1, _LOOK_BACK_DAYS)
        for span in _local_spans(hours, zone, today + timedelta(days=ahead))
        for edge in span
    )
    open_now = closed_since(hours, zone_name, at) is None
    for edge in edges:
        if edge > at and (closed_since(hours, zone_name, edge) is None) != open_now:
            return edge
    return None
