"""The dashboard's signed cookies and its task timeline's scale, without a server."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from app.dashboard.queries import examples_of, trigger_of
from app.dashboard.session import SESSION_SECONDS, Sessions
from app.dashboard.views import SCALE, timeline
from domain.tasks import Task, TaskStatus

KEY = "Q2hhbmdlIG1lOiB0aGlzIGlzIGEgdGVzdCBrZXkgISE="


def test_a_session_reads_back_until_it_expires() -> None:
    sessions, env = Sessions(KEY), uuid4()
    cookie = sessions.encode(env, "hash-of-key", now=1_000)
    session = sessions.decode(cookie, now=1_001)
    assert session is not None and session.environment_id == env
    assert session.key_fingerprint == sessions.fingerprint("hash-of-key") != sessions.fingerprint("another")
    assert sessions.decode(cookie, now=1_000 + SESSION_SECONDS) is None
    assert "hash-of-key" not in cookie


def test_a_tampered_or_foreign_cookie_is_no_session() -> None:
    sessions = Sessions(KEY)
    cookie = sessions.encode(uuid4(), "h")
    data, signature = cookie.split(".")
    other = Sessions(KEY.replace("Q", "R"))
    forged = other.encode(uuid4(), "h")
    for bad in (forged, data + "." + signature[::-1], data[:-2] + "xx." + signature, "", "a.b.c", "x" * 2000):
        assert sessions.decode(bad) is None
    # Rotating JOBS_SECRET_KEY (new,old) keeps the sessions the old key signed.
    assert Sessions(f"{KEY.replace('Q', 'R')},{KEY}").decode(cookie) is not None


def test_csrf_tokens_are_bound_to_their_nonce() -> None:
    sessions = Sessions(KEY)
    nonce = sessions.new_nonce()
    token = sessions.csrf_token(nonce)
    assert sessions.csrf_valid(nonce, token)
    assert not sessions.csrf_valid(sessions.new_nonce(), token)
    assert not sessions.csrf_valid(nonce, None) and not sessions.csrf_valid(None, token)
    assert not Sessions(None).csrf_valid(nonce, token)  # a process without the key signs with its own


def _task(name: str, start: float, end: float | None, parent: str | None = None) -> Task:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return Task(
        id=name,
        idempotency_key=name,
        name=name,
        noop=False,
        status=TaskStatus.COMPLETED if end is not None else TaskStatus.RUNNING,
        started_at=t0 + timedelta(seconds=start),
        completed_at=None if end is None else t0 + timedelta(seconds=end),
        parent_id=parent,
    )


def test_the_timeline_nests_tasks_and_draws_them_to_scale() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tasks = [_task("child", 2, 4, parent="outer"), _task("outer", 0, 5), _task("late", 6, 10)]
    rows = timeline(tasks, start, start + timedelta(seconds=10))
    assert [(row.task.id, row.depth) for row in rows] == [("outer", 0), ("child", 1), ("late", 0)]
    outer, child, late = rows
    assert (outer.x, outer.width) == (0, SCALE / 2)
    assert (child.x, child.width) == (SCALE * 0.2, SCALE * 0.2)
    assert (late.x, late.width) == (SCALE * 0.6, SCALE * 0.4)
    assert child.seconds == 2


def test_triggers_and_examples_from_index_metadata() -> None:
    assert trigger_of({"trigger": {"type": "static", "rule": {"event": "a.b"}}}) == ("event", "a.b")
    assert trigger_of(
        {"trigger": {"type": "scheduled", "schedule": {"type": "cron", "options": {"cron": "0 * * * *"}}}}
    ) == (
        "schedule",
        "cron 0 * * * *",
    )
    assert trigger_of({"trigger": {"type": "invoke"}}) == ("invoke", "invoke")
    assert trigger_of(None) == ("event", "?")
    event = {"examples": [{"id": "x", "name": "X", "payload": {"a": 1}}, {"id": "bad"}, "junk"]}
    assert examples_of({"event": event}) == [{"name": "X", "payload": {"a": 1}}]
    assert examples_of({"event": {"examples": None}}) == []
