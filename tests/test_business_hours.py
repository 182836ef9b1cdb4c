"""Business hours: the shape an admin may give them, and whether a moment is inside them, in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from fiv_console.routing.business_hours import NEVER_OPEN_SINCE, BusinessHours, closed_since, next_change

WEEKDAYS_9_TO_6 = BusinessHours.model_validate(
    {day: [["09:00", "12:30"], ["13:30", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_open_within_an_interval_and_closed_since_the_last_one_ended() -> None:
    # 2026-11-25 is a Wednesday; São Paulo is UTC-3 all year.
    zone = "America/Sao_Paulo"
    assert closed_since(WEEKDAYS_9_TO_6, zone, _at("2026-11-25T12:00:00+00:00")) is None  # 09:00 local
    assert closed_since(WEEKDAYS_9_TO_6, zone, _at("2026-11-25T15:45:00+00:00")) == _at("2026-11-25T15:30:00+00:00")
    assert closed_since(WEEKDAYS_9_TO_6, zone, _at("2026-11-25T11:59:00+00:00")) == _at("2026-11-24T21:00:00+00:00")
    # Sunday: closed since Friday 18:00.
    assert closed_since(WEEKDAYS_9_TO_6, zone, _at("2026-11-29T15:00:00+00:00")) == _at("2026-11-27T21:00:00+00:00")


def test_wall_clock_hours_follow_daylight_saving() -> None:
    hours = BusinessHours.model_validate({"mon": [["09:00", "17:00"]], "sun": [["09:00", "17:00"]]})
    # Lisbon is UTC+1 in summer, UTC+0 in winter: 09:00 local is 08:00 or 09:00 UTC.
    assert closed_since(hours, "Europe/Lisbon", _at("2026-07-06T08:30:00+00:00")) is None
    assert closed_since(hours, "Europe/Lisbon", _at("2026-11-23T08:30:00+00:00")) is not None
    assert closed_since(hours, "Europe/Lisbon", _at("2026-11-23T09:30:00+00:00")) is None
    # The Sunday the clocks go back (2026-10-25, at 02:00): midnight was UTC+1, but 17:00 that afternoon is
    # 17:00 UTC, not the 16:00 that adding 17 hours to midnight would give.
    assert closed_since(hours, "Europe/Lisbon", _at("2026-10-25T16:30:00+00:00")) is None
    assert closed_since(hours, "Europe/Lisbon", _at("2026-10-25T17:30:00+00:00")) == _at("2026-10-25T17:00:00+00:00")


def test_a_day_may_end_at_midnight_and_a_week_without_hours_was_never_open() -> None:
    late = BusinessHours.model_validate({"fri": [["20:00", "24:00"]]})
    assert closed_since(late, "UTC", _at("2026-11-27T23:59:00+00:00")) is None
    assert closed_since(late, "UTC", _at("2026-11-28T00:00:00+00:00")) == _at("2026-11-28T00:00:00+00:00")
    assert closed_since(BusinessHours({}), "UTC", datetime.now(UTC)) == NEVER_OPEN_SINCE


@pytest.mark.parametrize(
    ("hours", "complaint"),
    [
        ({"mon": [["18:00", "09:00"]]}, "end after it starts"),
        ({"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}, "must not overlap"),
        ({"mon": [["9:00", "18:00"]]}, "HH:MM"),
        ({"mon": [["09:00", "24:30"]]}, "HH:MM"),
        ({"monday": [["09:00", "18:00"]]}, "Input should be 'mon'"),
        ({"mon": [["09:00"]]}, "Field required"),
    ],
)
def test_bad_hours_are_refused_with_a_reason(hours: object, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        BusinessHours.model_validate(hours)


def test_the_next_opening_or_closing_is_found_across_lunch_nights_and_weekends() -> None:
    """What the wallboard waits for to show a queue opening or closing (São Paulo, UTC-3)."""
    zone = "America/Sao_Paulo"
    assert next_change(WEEKDAYS_9_TO_6, zone, _at("2026-11-25T12:00:00+00:00")) == _at("2026-11-25T15:30:00+00:00")
    assert next_change(WEEKDAYS_9_TO_6, zone, _at("2026-11-25T15:45:00+00:00")) == _at("2026-11-25T16:30:00+00:00")
    assert next_change(WEEKDAYS_9_TO_6, zone, _at("2026-11-25T11:59:00+00:00")) == _at("2026-11-25T12:00:00+00:00")
    # Friday evening: Monday 09:00.
    assert next_change(WEEKDAYS_9_TO_6, zone, _at("2026-11-27T22:00:00+00:00")) == _at("2026-11-30T12:00:00+00:00")
    # Open all day every day, or never open: nothing changes.
    always = BusinessHours.model_validate(
        {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    )
    assert next_change(always, zone, _at("2026-11-25T12:00:00+00:00")) is None
    assert next_change(BusinessHours.model_validate({}), zone, _at("2026-11-25T12:00:00+00:00")) is None
