"""Cron expressions (the five fields of Vixie cron) and the next time one fires, in a time zone.

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week (0-7 or SUN-SAT,
0 and 7 both Sunday). Each is `*` (or `?`), a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a list of
those separated by commas. As in Vixie cron, when both day fields are restricted a day matching either fires.
`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` stand for their usual fields.

Times are wall-clock times in the zone: a time skipped by a daylight-saving jump does not fire, and a time
that occurs twice fires the first time only.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_ZONE_LENGTH = 64
# Any expression fires within this many years of any moment (29 February of a leap year is the rarest day).
SEARCH_YEARS = 9


class CronError(ValueError):
    """The expression is not one this parser reads; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_from: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTHS, 1),
    _Field("day of week", 0, 7, DAYS, 0),
)


@dataclass(frozen=True, slots=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`
    zone: str = "UTC"

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` the expression fires, in UTC."""
        tz = ZoneInfo(self.zone)
        after = moment.astimezone(UTC)
        local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        limit = local + timedelta(days=366 * SEARCH_YEARS)
        while local < limit:
            if local.month not in self.months:
                local = _first_of_next_month(local)
                continue
            if not self._day_matches(local):
                local = local.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0) + timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local += timedelta(minutes=1)
                continue
            candidate = local.replace(tzinfo=tz)
            instant = candidate.astimezone(UTC)
            exists = instant.astimezone(tz).replace(tzinfo=None) == local
            if exists and instant > after:
                return instant
            local += timedelta(minutes=1)
        raise CronError(f"{self.expression!r} never fires")

    def _day_matches(self, local: datetime) -> bool:
        in_month = local.day in self.days
        in_week = (local.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return in_week
        if self.any_weekday:
            return in_month
        return in_month or in_week


def parse(expression: str, zone: str = "UTC") -> Cron:
    """The expression read, checked to fire at least once; CronError naming the problem otherwise."""
    if not isinstance(expression, str):
        raise CronError("a cron expression must be a string")
    if not isinstance(zone, str) or not 0 < len(zone) <= MAX_ZONE_LENGTH or not _zone_exists(zone):
        raise CronError(f"unknown time zone {zone[:MAX_ZONE_LENGTH]!r} (use an IANA name such as 'Europe/Paris')")
    text = MACROS.get(expression.strip().lower(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{expression!r} must have 5 fields (minute hour day-of-month month day-of-week)")
    values = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if day == 7 else day for day in values[4])
    cron = Cron(
        expression=expression,
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        any_day=parts[2] in ("*", "?"),
        any_weekday=parts[4] in ("*", "?"),
        zone=zone,
    )
    cron.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # raises when it never fires (30 February, say)
    return cron


def _zone_exists(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    found: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"the {field.name} field {text!r} has an empty item")
        found |= _parse_item(item, field)
    return frozenset(found)


def _parse_item(item: str, field: _Field) -> set[int]:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        step = _number(step_text, field, "step")
        if step < 1:
            raise CronError(f"the {field.name} step in {item!r} must be at least 1")
    if base in ("*", "?"):
        low, high = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(first, field), _value(last, field)
        if low > high:
            raise CronError(f"the {field.name} range {base!r} runs backwards")
    else:
        low = _value(base, field)
        high = field.high if slash else low
    return set(range(low, high + 1, step))


def _value(text: str, field: _Field) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names.index(upper) + field.names_from
    value = _number(text, field, "value")
    if not field.low <= value <= field.high:
        raise CronError(f"the {field.name} value {value} is outside {field.low}-{field.high}")
    return value


def _number(text: str, field: _Field, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise CronError(f"the {field.name} {what} {text!r} is not a number")
    return int(text)


def _first_of_next_month(local: datetime) -> datetime:
    if local.month == 12:
        return local.replace(year=local.year + 1, month=1, day=1, hour=0, minute=0)
    return local.replace(month=local.month + 1, day=1, hour=0, minute=0)
