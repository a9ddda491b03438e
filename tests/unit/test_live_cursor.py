"""The live feed's cursor: where the next look starts, given PostgreSQL snapshots (no database)."""

from app.dashboard.live import Snapshot, _Cursor


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
