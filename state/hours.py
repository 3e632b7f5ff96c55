"""Business hours: when reminders and escalation announcements may go out (quiet hours are the
rest). `{days: Mon-Fri, from: "09:00", to: "18:00", tz: Europe/Berlin}`; pure, no clock of its own.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(value: object) -> object:
    """`Mon-Fri`, `Mon,Wed,Fri`, `Sat-Sun` or a list of day names: weekday numbers, Monday 0."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        return value
    days: set[int] = set()
    for part in value:
        if isinstance(part, int) and not isinstance(part, bool):
            days.add(part)
            continue
        if not isinstance(part, str):
            raise ValueError(f"{part!r} is not a day name such as Mon")
        first, _, last = part.partition("-")
        try:
            start = DAY_NAMES.index(first.strip().lower()[:3])
            end = DAY_NAMES.index((last or first).strip().lower()[:3])
        except ValueError as e:
            raise ValueError(f"{part!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun") from e
        day = start
        while True:  # Fri-Mon wraps over the weekend
            days.add(day)
            if day == end:
                break
            day = (day + 1) % 7
    return sorted(days)


def _clock_time(value: object) -> object:
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError as e:
            raise ValueError(f"{value!r} is not a time of day like 09:00") from e
    return value


class BusinessHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    days: Annotated[list[Annotated[int, Field(ge=0, le=6)]], BeforeValidator(_days),
                    Field(min_length=1)] = [0, 1, 2, 3, 4]
    start: Annotated[time, BeforeValidator(_clock_time), Field(alias="from")] = time(9)
    end: Annotated[time, BeforeValidator(_clock_time), Field(alias="to")] = time(18)
    tz: str = "UTC"

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"{value!r} is not a time zone such as Europe/Berlin") from e
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start >= self.end:
            raise ValueError("business hours: `from` must be before `to` on the same day")
        return self

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.tz))
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_open(self, at: datetime) -> datetime:
        """`at` itself during business hours, else when they next begin."""
        if self.is_open(at):
            return at
        zone = ZoneInfo(self.tz)
        local = at.astimezone(zone)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            opening = datetime.combine(day, self.start, tzinfo=zone)
            if day.weekday() in self.days and opening > local:
                return opening.astimezone(at.tzinfo)
        raise AssertionError("a week always has an opening")  # days is never empty
