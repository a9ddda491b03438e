"""Run ids are UUID version 7: ordered by the time they were made, so new runs' index entries stay together."""

import time
from uuid import UUID

from app.service.runs import new_run_id


def test_a_run_id_is_a_version_7_uuid_holding_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    run_id = new_run_id()
    after = time.time_ns() // 1_000_000
    assert run_id.version == 7 and run_id.variant == "specified in RFC 4122"
    assert before <= run_id.int >> 80 <= after
    assert UUID(str(run_id)) == run_id


def test_run_ids_made_later_sort_later_and_never_repeat() -> None:
    earlier = [new_run_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_run_id()
    assert all(run_id < later for run_id in earlier)
    assert len(set(earlier)) == len(earlier)
    assert len({run_id.int & (1 << 62) - 1 for run_id in earlier}) == len(earlier)  # the random bits differ
