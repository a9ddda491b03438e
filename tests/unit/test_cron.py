"""Cron expressions: what they accept, and the next time they fire, in a time zone (no I/O)."""

from datetime import UTC, datetime

import pytest

from domain.cron import CronError, parse


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


def following(expression: str, start: str, n: int = 3, zone: str = "UTC") -> list[str]:
    cron = parse(expression, zone)
    moments, moment = [], at(start)
    for _ in range(n):
        moment = cron.next_after(moment)
        moments.append(moment.strftime("%Y-%m-%d %H:%M %a"))
    return moments


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("* * * * *", "2026-01-01 10:00:30", ["2026-01-01 10:01 Thu", "2026-01-01 10:02 Thu", "2026-01-01 10:03 Thu"]),
        (
            "*/15 * * * *",
            "2026-01-01 10:00:00",
            ["2026-01-01 10:15 Thu", "2026-01-01 10:30 Thu", "2026-01-01 10:45 Thu"],
        ),
        (
            "5,35 9-10 * * *",
            "2026-01-01 09:30",
            ["2026-01-01 09:35 Thu", "2026-01-01 10:05 Thu", "2026-01-01 10:35 Thu"],
        ),
        (
            "0 9-17/4 * * *",
            "2026-01-01 00:00",
            ["2026-01-01 09:00 Thu", "2026-01-01 13:00 Thu", "2026-01-01 17:00 Thu"],
        ),
        (
            "30 8 * * MON-FRI",
            "2026-01-02 09:00",
            ["2026-01-05 08:30 Mon", "2026-01-06 08:30 Tue", "2026-01-07 08:30 Wed"],
        ),
        ("0 0 * * sun", "2026-01-01 00:00", ["2026-01-04 00:00 Sun", "2026-01-11 00:00 Sun", "2026-01-18 00:00 Sun"]),
        ("0 0 * * 7", "2026-01-01 00:00", ["2026-01-04 00:00 Sun", "2026-01-11 00:00 Sun", "2026-01-18 00:00 Sun"]),
        (
            "0 12 1 JAN,jul *",
            "2026-03-01 00:00",
            ["2026-07-01 12:00 Wed", "2027-01-01 12:00 Fri", "2027-07-01 12:00 Thu"],
        ),
        ("0 0 31 * *", "2026-01-31 00:00", ["2026-03-31 00:00 Tue", "2026-05-31 00:00 Sun", "2026-07-31 00:00 Fri"]),
        ("0 0 29 2 *", "2026-01-01 00:00", ["2028-02-29 00:00 Tue", "2032-02-29 00:00 Sun", "2036-02-29 00:00 Fri"]),
        # Both day fields restricted: a day matching either fires (Vixie cron).
        ("0 0 13 * FRI", "2026-02-01 00:00", ["2026-02-06 00:00 Fri", "2026-02-13 00:00 Fri", "2026-02-20 00:00 Fri"]),
        ("0 0 1-7 * */3", "2026-03-07 00:00", ["2026-03-08 00:00 Sun", "2026-03-11 00:00 Wed", "2026-03-14 00:00 Sat"]),
        ("@hourly", "2026-01-01 10:59", ["2026-01-01 11:00 Thu", "2026-01-01 12:00 Thu", "2026-01-01 13:00 Thu"]),
        ("@monthly", "2026-12-15 00:00", ["2027-01-01 00:00 Fri", "2027-02-01 00:00 Mon", "2027-03-01 00:00 Mon"]),
        ("10/20 * * * *", "2026-01-01 10:00", ["2026-01-01 10:10 Thu", "2026-01-01 10:30 Thu", "2026-01-01 10:50 Thu"]),
    ],
)
def test_the_next_times_an_expression_fires(expression: str, start: str, expected: list[str]) -> None:
    assert following(expression, start) == expected


def test_the_next_time_is_strictly_after_the_moment_given() -> None:
    cron = parse("0 * * * *")
    assert cron.next_after(at("2026-01-01 10:00:00")) == at("2026-01-01 11:00:00")
    assert cron.next_after(at("2026-01-01 09:59:59.999")) == at("2026-01-01 10:00:00")


def test_a_time_zone_moves_the_wall_clock_time_and_follows_daylight_saving() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    assert following("0 9 * * *", "2026-03-27 12:00", 3, "Europe/Paris") == [
        "2026-03-28 08:00 Sat",
        "2026-03-29 07:00 Sun",
        "2026-03-30 07:00 Mon",
    ]


def test_a_time_skipped_by_daylight_saving_does_not_fire_and_a_repeated_one_fires_once() -> None:
    # New York: 02:30 does not exist on 8 March 2026; 01:30 happens twice on 1 November 2026.
    assert following("30 2 * * *", "2026-03-07 12:00", 2, "America/New_York") == [
        "2026-03-09 06:30 Mon",
        "2026-03-10 06:30 Tue",
    ]
    assert following("30 1 * * *", "2026-10-31 12:00", 2, "America/New_York") == [
        "2026-11-01 05:30 Sun",
        "2026-11-02 06:30 Mon",
    ]


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("* * * *", "must have 5 fields"),
        ("* * * * * *", "must have 5 fields"),
        ("60 * * * *", "minute value 60 is outside 0-59"),
        ("* 24 * * *", "hour value 24 is outside 0-23"),
        ("* * 0 * *", "day of month value 0 is outside 1-31"),
        ("* * * 13 *", "month value 13 is outside 1-12"),
        ("* * * * 8", "day of week value 8 is outside 0-7"),
        ("*/0 * * * *", "step in '*/0' must be at least 1"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("a * * * *", "minute value 'a' is not a number"),
        ("1,,2 * * * *", "has an empty item"),
        ("* * * FOO *", "month value 'FOO' is not a number"),
        ("0 0 30 2 *", "never fires"),
        ("* * * * \u0661", "is not a number"),  # an Arabic-Indic digit one
    ],
)
def test_what_is_not_an_expression_is_refused_naming_the_problem(expression: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem.replace("*", r"\*")):
        parse(expression)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(CronError, match="unknown time zone 'Mars/Olympus'"):
        parse("* * * * *", "Mars/Olympus")
