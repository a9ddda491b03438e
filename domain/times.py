"""Times on the wire: the trigger.dev API writes them in ISO 8601, in UTC, to the millisecond, with a Z."""

from datetime import UTC, datetime


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def instant(text: str) -> datetime:
    """An ISO 8601 time as a datetime in UTC (one without a time zone is taken to be UTC); ValueError when it
    is not one, or lies outside years 1 to 9999 in UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None
