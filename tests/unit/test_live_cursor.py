"""The live feed's cursor: where the next look starts, given PostgreSQL snapshots (no database)."""

from app.dashboard.live import MAX_UNSETTLED_LOOKS, Snapshot, _Cursor


def test_a_snapshot_reads_its_bounds() -> None:
    assert Snapshot.parse("758:762:759,760") == Snapshot(758, 762)
    assert Snapshot.parse("10:10:") == Snapshot(10, 10)


def test_settles_a_position_only_once_every_transaction_that_could_write_below_it_ended() -> None:
    cursor = _Cursor(settled=0, previous="100:100:", _top=50, _first=Snapshot(100, 100))
    # Transaction 103 is in flight: it may hold a position below 70 that commits later.
    cursor.advance("103:105:103", 70)
    assert cursor.settled == 50  # the first look's top: every transaction below 100 had ended by xmin 103
    assert cursor.previous == "103:105:103"
    cursor.advance("103:108:103", 90)
    assert cursor.settled == 50  # 103 still runs
    cursor.advance("108:108:", None)
    assert cursor.settled == 90  # nothing below xmax 108 runs: positions up to 90 are final
    cursor.advance("108:108:", None)
    assert cursor.settled == 90


def test_a_transaction_left_open_holds_the_cursor_back_a_minute_at_most() -> None:
    cursor = _Cursor(settled=0, previous="100:100:", _top=50, _first=Snapshot(100, 100))
    for look in range(1, MAX_UNSETTLED_LOOKS + 1):
        cursor.advance(f"99:{100 + look}:99", 50 + look)  # transaction 99 never ends
    assert cursor.settled == 50  # held at the first look's top: 99 might still commit below what the looks saw
    cursor.advance("99:300:99", 500)
    assert cursor.settled == 51  # past that, each look lets the oldest one go
    cursor.advance("99:301:99", 501)
    assert cursor.settled == 52
