"""W3C traceparent parsing and formatting, the ids of a hop, request ids, JSON log lines."""

import json
import logging
import sys

import pytest

from app.api.observe import new_request_id, sane_request_id
from app.observability import logs, tracing
from app.observability.tracing import TraceParent, exporter_configured, parse_traceparent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_read_field_by_field() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True)
    assert parsed.header == VALID
    assert parse_traceparent(VALID.encode()) == parsed
    assert parse_traceparent(VALID[:-2] + "00") == TraceParent(parsed.trace_id, parsed.span_id, sampled=False)


def test_a_later_version_may_append_fields() -> None:
    assert parse_traceparent("01" + VALID[2:] + "-what-comes-next") is not None
    assert parse_traceparent(VALID + "-more") is None  # version 00 is exactly 55 characters


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        VALID[:-1],
        VALID.upper(),
        "ff" + VALID[2:],
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
        VALID.replace("-", "_"),
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        b"\xff" * 55,
    ],
)
def test_a_malformed_traceparent_is_none(header: str | bytes) -> None:
    assert parse_traceparent(header) is None


def test_a_new_trace_and_a_child_are_valid_and_distinct() -> None:
    root = tracing.new_trace()
    assert parse_traceparent(root.header) == root
    child = root.child()
    assert (child.trace_id, child.sampled) == (root.trace_id, root.sampled)
    assert child.span_id != root.span_id
    assert len({tracing.new_trace().trace_id for _ in range(1000)}) == 1000


def test_without_an_exporter_a_hop_continues_the_incoming_trace() -> None:
    assert tracing.current() is None
    with tracing.begin(VALID, "request") as context:
        assert tracing.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert context.span_id != "00f067aa0ba902b7"  # this hop's own span id
        assert tracing.traceparent() == context.header
        outgoing = parse_traceparent(tracing.outgoing_traceparent())
        assert outgoing is not None and outgoing.trace_id == context.trace_id and outgoing.span_id != context.span_id
    assert tracing.current() is None
    with tracing.begin("not-a-traceparent", "request") as context:
        assert context.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"
        assert parse_traceparent(context.header) == context


def test_outbox_rows_carry_the_current_context() -> None:
    from app.adapters.messages import DeliverEvent, outbox_message

    assert "traceparent" not in outbox_message("t", "k", DeliverEvent("e")).headers
    with tracing.begin(VALID, "request") as context:
        assert outbox_message("t", "k", DeliverEvent("e")).headers["traceparent"] == context.header


def test_the_exporter_is_on_only_when_the_standard_variables_ask() -> None:
    assert not exporter_configured({})
    assert exporter_configured({"OTEL_TRACES_EXPORTER": "otlp"})
    assert exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert exporter_configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"})
    assert not exporter_configured({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"})


def test_request_ids_are_taken_when_sane() -> None:
    assert sane_request_id(b"abc-123_XYZ.42") == "abc-123_XYZ.42"
    assert sane_request_id(b"x" * 128) == "x" * 128
    for bad in (b"", b"x" * 129, b"with space", b"tab\t", b"caf\xc3\xa9", b"nul\x00"):
        assert sane_request_id(bad) is None
    made = new_request_id()
    assert len(made) == 32 and made != new_request_id() and sane_request_id(made.encode()) == made


def test_a_json_line_names_its_context_and_its_traceback() -> None:
    formatter = logs.JsonFormatter("worker")
    token = logs.bind_run("run-1", "event-1", 2)
    request = logs.request_id.set("req-1")
    try:
        with tracing.begin(VALID, "message"):
            try:
                raise ValueError("boom")
            except ValueError:
                record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "it %s", ("failed",), sys.exc_info())
            line = json.loads(formatter.format(record))
    finally:
        logs.request_id.reset(request)
        logs.unbind_run(token)
    assert line["time"].endswith("Z") and line["time"][10] == "T"
    assert {k: line[k] for k in ("level", "role", "logger", "message", "run_id", "event_id", "attempt")} == {
        "level": "ERROR",
        "role": "worker",
        "logger": "app.x",
        "message": "it failed",
        "run_id": "run-1",
        "event_id": "event-1",
        "attempt": 2,
    }
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["request_id"] == "req-1"
    assert "ValueError: boom" in line["exc"]
    bare = json.loads(formatter.format(logging.LogRecord("a", logging.INFO, __file__, 1, "plain", (), None)))
    assert set(bare) == {"time", "level", "role", "logger", "message"}


def test_a_repeated_failure_is_logged_when_it_starts_and_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    failures = logs.Failures(logging.getLogger("test.failures"), "publishing")
    with caplog.at_level(logging.WARNING, "test.failures"):
        for _ in range(50):
            failures.failed(ConnectionRefusedError("refused"), 0.5)
        failures.succeeded()
        failures.succeeded()
    assert [r.getMessage() for r in caplog.records] == [
        "publishing failed (ConnectionRefusedError: refused); retrying every 0.5s",
        "publishing recovered after 50 failures (ConnectionRefusedError: refused)",
    ]


def test_a_worker_handles_a_message_in_its_trace_but_a_schedule_tick_starts_one() -> None:
    from app.adapters.messages import ExecuteJobRun, FireSchedule, NotifyRun
    from app.observability.handling import Handling

    headers = [("id", b"7"), ("traceparent", VALID.encode())]
    formatter = logs.JsonFormatter("worker")
    record = logging.LogRecord("w", logging.INFO, __file__, 1, "handling", (), None)
    with Handling(headers, ExecuteJobRun("run-9", "record-3", "job", "1", attempt=2)):
        assert tracing.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
        line = json.loads(formatter.format(record))
        assert (line["run_id"], line["event_id"], line["attempt"]) == ("run-9", "record-3", 2)
    with Handling(headers, NotifyRun("run-9", "endpoint", attempt=4)):
        line = json.loads(formatter.format(record))
        assert line["run_id"] == "run-9" and "attempt" not in line  # a notification's try is not the run's attempt
    with Handling(headers, FireSchedule("schedule-1", "2026-01-01T00:00:00+00:00")):
        assert tracing.trace_id() not in (None, "4bf92f3577b34da6a3ce929d0e0e4736")
    assert tracing.current() is None and "run_id" not in json.loads(formatter.format(record))
