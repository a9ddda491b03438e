"""decode_events gives exactly what decode_event gives, row by row, whether its typed decoder takes a stored
state or hands it to decode_event; decode_fields (what a rebuild folds) gives the same fields, and the same
read-model changes."""

import dataclasses
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
from eventsourcing.utils import register_topic

from app.adapters.codec import decode_event, decode_events, decode_fields, encode_event
from app.adapters.json_limits import MAX_STORED_DEPTH, UNRENDERABLE
from domain.endpoints import Endpoint
from domain.environments import Environment
from domain.runs import JobRun
from domain.tasks import TaskSpec
from projections.registry import changes_for
from projections.written import WrittenKeys
from tests.unit.test_codec_and_fold import finished_run

Row = tuple[int, UUID, int, str, bytes]


def rows_of(events: list[Any]) -> list[Row]:
    return [(n, *encode_event(event)) for n, event in enumerate(events, 1)]


def assert_decoded_alike(rows: list[Row]) -> None:
    expected = [(position, decode_event(*row)) for position, *row in rows]
    got = decode_events(rows)
    assert [position for position, _ in got] == [position for position, _ in expected]
    for (_, event), (_, reference) in zip(got, expected, strict=True):
        assert type(event) is type(reference)
        assert event.__dict__ == reference.__dict__
    fields = decode_fields(rows)
    assert [position for position, _ in fields] == [position for position, _ in expected]
    for (_, value), (_, reference) in zip(fields, expected, strict=True):
        if isinstance(value, msgspec.Struct):
            assert type(value).stands_for is type(reference)  # type: ignore[attr-defined]
            assert msgspec.structs.asdict(value) == {**reference.__dict__, "class_version": value.class_version}  # type: ignore[attr-defined]
        else:
            assert type(value) is type(reference) and value.__dict__ == reference.__dict__
    assert list(changes_for(value for _, value in fields)) == list(changes_for(event for _, event in expected))


def test_events_of_every_kind_decode_as_decode_event_decodes_them() -> None:
    run = finished_run()
    events: list[Any] = run.collect_events()
    run.create_task(TaskSpec("k", name="fetch", delay_until=datetime(2026, 1, 2, tzinfo=UTC)), datetime.now(UTC))
    events += run.collect_events()  # a typed value (a Task), at class version 2
    endpoint = Endpoint(id=uuid4(), environment_id=str(uuid4()), slug="ep", url="http://127.0.0.1:1/api")
    endpoint.index([{"id": "job", "version": "1.0.0", "event": {"name": "order.placed"}}], ["dyn"])
    environment = Environment(id=uuid4(), slug="prod", type="PRODUCTION", api_key_hash="h")
    events += endpoint.collect_events() + environment.collect_events()
    rows = rows_of(events)
    assert_decoded_alike(rows)
    assert isinstance(decode_events(rows)[1][1].__dict__["lease_until"], datetime)
    folded = [value for _, value in decode_fields(rows)]
    assert all(isinstance(value, msgspec.Struct) for value in folded)  # none made into an event
    assert len(list(changes_for(folded))) >= 4  # the run's row and the catalog's: the comparison compared


def test_states_the_typed_decoder_cannot_take_are_decoded_by_decode_event() -> None:
    created = finished_run().collect_events()[0]
    _, originator_id, version, topic, state = rows_of([created])[0]
    values = msgspec.json.decode(state)
    deep: Any = "bottom"
    for _ in range(MAX_STORED_DEPTH + 5):
        deep = [deep]
    odd_time = {**values, "timestamp": "2026-01-01"}  # fromisoformat reads a date alone; msgspec refuses it
    indexed_v1 = {  # an older class version: upcast
        "timestamp": "2026-01-01T00:00:00.000001+00:00",
        "originator_topic": "jobs.Endpoint",
        "environment_id": str(uuid4()),
        "jobs": [{"id": "j", "version": "1.0.0"}],
    }
    rows: list[Row] = [
        (1, originator_id, version, topic, msgspec.json.encode({**values, "tags": deep})),
        (2, originator_id, version, topic, msgspec.json.encode(odd_time)),
        (3, uuid4(), 2, "jobs.Endpoint.EndpointIndexed", msgspec.json.encode(indexed_v1)),
    ]
    assert_decoded_alike(rows)
    assert not any(isinstance(value, msgspec.Struct) for _, value in decode_fields(rows))
    decoded = [event for _, event in decode_events(rows)]
    assert UNRENDERABLE in repr(decoded[0].__dict__["tags"])
    assert decoded[1].__dict__["timestamp"] == datetime(2026, 1, 1)
    assert decoded[2].__dict__["dynamic_schedules"] == []


def test_written_keys_never_forget_a_key() -> None:
    written = WrittenKeys(bits=1 << 12)  # small: many keys share bits, as a full filter's do
    keys = [(uuid4(),) for _ in range(2000)]
    for key in keys:
        written.add("run_status", key)
    assert all(written.may_hold("run_status", key) for key in keys)
    fresh = [(uuid4(),) for _ in range(2000)]
    assert not all(written.may_hold("run_status", key) for key in fresh)
    roomy = WrittenKeys()
    roomy.add("jobs", (keys[0][0], "slug"))
    assert roomy.may_hold("jobs", (keys[0][0], "slug"))
    assert not roomy.may_hold("jobs", (keys[0][0], "other"))
    assert not roomy.may_hold("run_status", keys[0])
    bulk = WrittenKeys(bits=1 << 12)  # the same keys in bulk: the same filter
    bulk.add_all("run_status", keys)
    assert bulk.maybe_held("run_status", keys) == keys
    assert bulk.maybe_held("run_status", fresh) == [key for key in fresh if written.may_hold("run_status", key)]


def test_events_the_struct_of_their_fields_would_misread_are_folded_as_events() -> None:
    """A class with a property (the struct has only the fields), or with a field named as one of the struct's
    class attributes (which would hide it)."""
    now = datetime.now(UTC)
    noted = Noted(originator_id=uuid4(), originator_version=2, timestamp=now, note="hi")
    odd = Odd(originator_id=uuid4(), originator_version=2, timestamp=now, stands_for="x")
    rows = rows_of([noted, odd])
    assert_decoded_alike(rows)
    (_, read_noted), (_, read_odd) = decode_fields(rows)
    assert type(read_noted) is Noted and read_noted.loud == "HI"
    assert type(read_odd) is Odd and read_odd.stands_for == "x"


@dataclasses.dataclass(frozen=True)
class Odd(JobRun.Event):
    stands_for: str


@dataclasses.dataclass(frozen=True)
class Noted(JobRun.Event):
    """An event class with a property a projector could read, which the struct of its fields would lack."""

    note: str

    @property
    def loud(self) -> str:
        return self.note.upper()


register_topic("tests.JobRun.Noted", Noted)
register_topic("tests.JobRun.Odd", Odd)
