"""The rebuild's timestamptz codec stores every time exactly as asyncpg's own would, and reads it back the same."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg

from projections import timestamps

TIMES = [
    datetime(2026, 11, 29, 5, 43, 8, 261564, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before PostgreSQL's epoch: a negative count
    datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 29, 11, 13, 8, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 3, 1, 23, 0, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2026, 11, 29, 5, 43, 8),  # naive: local time, as asyncpg takes it
    datetime(9999, 12, 31, 23, 59, 58, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # the extremes: PostgreSQL's infinities
    datetime(1, 1, 1, tzinfo=UTC),
    datetime.max,
    datetime.min,
]
INFINITIES = ["infinity", "-infinity"] * 2


async def _connect(database_url: str) -> Any:
    return await asyncpg.connect(database_url.replace("+asyncpg", ""))


async def test_times_are_stored_as_asyncpg_stores_them_and_read_back_the_same(database_url: str) -> None:
    plain, coded = await _connect(database_url), await _connect(database_url)
    try:
        await coded.set_type_codec(
            "timestamptz", schema="pg_catalog", encoder=timestamps.encode, decoder=timestamps.decode, format="tuple"
        )
        await plain.execute("CREATE TEMP TABLE t (n int, asyncpgs timestamptz, ours timestamptz)")
        await plain.copy_records_to_table("t", records=list(enumerate(TIMES)), columns=["n", "asyncpgs"])
        temp_schema = await plain.fetchval("SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()")
        # The temp table is the first connection's: the second sends its values through an unlogged copy.
        await coded.execute("CREATE UNLOGGED TABLE codec_probe (n int, ours timestamptz)")
        try:
            await coded.copy_records_to_table("codec_probe", records=list(enumerate(TIMES)))
            await coded.executemany("INSERT INTO codec_probe VALUES ($1 + 100, $2)", list(enumerate(TIMES)))
            stored = await plain.fetch(
                f"SELECT t.n, t.asyncpgs, p.ours, q.ours AS inserted, p.ours::text AS text FROM {temp_schema}.t "
                "JOIN codec_probe p USING (n) JOIN codec_probe q ON q.n = t.n + 100 ORDER BY t.n"
            )
            read = await coded.fetch("SELECT n, ours FROM codec_probe WHERE n < 100 ORDER BY n")
        finally:
            await coded.execute("DROP TABLE codec_probe")
    finally:
        await plain.close()
        await coded.close()
    assert len(stored) == len(TIMES)
    for row in stored:
        assert row["ours"] == row["asyncpgs"] == row["inserted"], (TIMES[row["n"]], row["text"])
    assert [row["text"] for row in stored][-4:] == INFINITIES
    assert "infinity" not in "".join(row["text"] for row in stored[:-4])
    finite = [time if time.tzinfo else time.astimezone(UTC) for time in TIMES[:-4]]
    assert [row["ours"] for row in read] == [*finite, *[datetime.max, datetime.min] * 2]
    assert all(row["ours"].tzinfo is UTC for row in read[:-4])
