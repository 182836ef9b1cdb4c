"""A report's range: local dates of the tenant's time zone, turned into instants and buckets.

`from` and `to` are calendar dates in the tenant's time zone, both included: the range runs from `from`'s
local midnight to the local midnight after `to`, so a day is 23 or 25 hours long where the clocks change.
Buckets are local hours when the range is at most two days, else local days; an hour the clocks repeat
(autumn) is one bucket of two hours, and an hour they skip (spring) has no bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Self
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_DAYS = 366
HOURLY_UP_TO_DAYS = 2

Unit = Literal["hour", "day"]

# A bucket's label: the local wall time it begins, to the hour or the day.
BUCKET_FORMATS: dict[Unit, str] = {"hour": "%Y-%m-%dT%H:00", "day": "%Y-%m-%d"}


class ReportQuery(BaseModel):
    """The range and filters of every report route."""

    model_config = ConfigDict(extra="forbid")

    start: date = Field(alias="from", description="First day (YYYY-MM-DD), in the tenant's time zone.")
    end: date = Field(alias="to", description="Last day (YYYY-MM-DD), included; at most 366 days after `from`.")
    queue_id: UUID | None = Field(default=None, description="Only this queue's figures.")
    agent_id: UUID | None = Field(default=None, description="Only figures credited to this agent.")

    @model_validator(mode="after")
    def _ordered_and_bounded(self) -> Self:
        if self.end < self.start:
            raise ValueError("`to` must not be before `from`")
        if (self.end - self.start).days + 1 > MAX_DAYS:
            raise ValueError(f"a report covers at most {MAX_DAYS} days")
        return self


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date
    time_zone: str

    @classmethod
    def of(cls, query: ReportQuery, time_zone: str) -> Period:
        return cls(query.start, query.end, time_zone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def starts_at(self) -> datetime:
        return _local_midnight(self.start, self.zone)

    @property
    def ends_at(self) -> datetime:
        """The first instant after the range (the local midnight after `end`)."""
        return _local_midnight(self.end + timedelta(days=1), self.zone)

    @property
    def unit(self) -> Unit:
        return "hour" if (self.end - self.start).days + 1 <= HOURLY_UP_TO_DAYS else "day"

    def buckets(self) -> list[str]:
        """Every bucket's label in order, so hours and days without traffic are shown as zeros."""
        python_format = BUCKET_FORMATS[self.unit]
        labels: dict[str, None] = {}
        moment, ends_at, zone = self.starts_at, self.ends_at, self.zone
        while moment < ends_at:
            labels[moment.astimezone(zone).strftime(python_format)] = None
            moment += timedelta(minutes=30)
        return list(labels)
