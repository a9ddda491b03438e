"""The archive of what retention removed: gzip'd JSON lines, a directory per day the runs ended.

Each batch writes one file per day it touched, `<dir>/<YYYY-MM-DD>/<first position>-<random>.jsonl.gz`,
under a temporary name renamed into place once complete (so a file there is whole), before the batch's
transaction commits: a crash in between leaves streams both archived and stored, which a restore skips.
Each line is one stream: `{"kind": "run" | "dispatcher" | "event_record", "id", "run_id", "completed_at",
"events": [{"position", "version", "topic", "recorded_at", "state"}]}` with `state` the event's stored JSON.
`zcat <dir>/*/*.jsonl.gz | jq` reads it; `jobs-service retention restore <files>` puts it back.
"""

import asyncio
import gzip
import os
import secrets
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from app.adapters.retention import Removed, StoredRow
from domain.retention import archive_day

_encoder = msgspec.json.Encoder()


class Archive:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files_written = 0

    async def keep(self, removed: Removed) -> None:
        await asyncio.to_thread(self._write, removed)

    def _write(self, removed: Removed) -> None:
        by_day: dict[date, list[bytes]] = {}
        for line_day, line in _lines(removed):
            by_day.setdefault(line_day, []).append(line)
        first = min(row.position for rows in removed.events.values() for row in rows)
        for day, lines in sorted(by_day.items()):
            folder = self.directory / day.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{first:012d}-{secrets.token_hex(4)}.jsonl.gz"
            partial = path.with_name(path.name + ".partial")
            with open(partial, "wb") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
                    gz.write(b"".join(lines))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, path)
            self.files_written += 1


def _lines(removed: Removed) -> Iterator[tuple[date, bytes]]:
    def line(kind: str, id: UUID, run_id: UUID) -> tuple[date, bytes]:
        ended = removed.runs[run_id]
        record = {
            "kind": kind,
            "id": str(id),
            "run_id": str(run_id),
            "completed_at": ended.isoformat(),
            "events": [_event(row) for row in removed.events.get(id, [])],
        }
        return archive_day(ended), _encoder.encode(record) + b"\n"

    for run_id in removed.runs:
        yield line("run", run_id, run_id)
    for dispatcher_id, run_id in removed.dispatchers.items():
        yield line("dispatcher", dispatcher_id, run_id)
    for record_id, run_id in removed.event_records.items():
        yield line("event_record", record_id, run_id)


def _event(row: StoredRow) -> dict[str, Any]:
    return {
        "position": row.position,
        "version": row.originator_version,
        "topic": row.topic,
        "recorded_at": row.recorded_at.isoformat(),
        "state": msgspec.Raw(row.state),
    }


def read_streams(path: Path) -> list[list[StoredRow]]:
    """The streams an archive file holds, as the store kept them."""
    streams: list[list[StoredRow]] = []
    with gzip.open(path, "rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                record = msgspec.json.decode(raw)
                id = UUID(record["id"])
                streams.append(
                    [
                        StoredRow(
                            int(event["position"]),
                            id,
                            int(event["version"]),
                            str(event["topic"]),
                            msgspec.json.encode(event["state"]),
                            datetime.fromisoformat(event["recorded_at"]),
                        )
                        for event in record["events"]
                    ]
                )
            except (msgspec.DecodeError, KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}: line {number} is not an archived stream ({error})") from None
    return streams
