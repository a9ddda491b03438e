"""Messages on the job-execution topic (msgspec JSON)."""

from typing import Literal

import msgspec


class ExecuteJobRun(msgspec.Struct, frozen=True, tag_field="type", tag="ExecuteJobRun"):
    run_id: str
    event_record_id: str
    job_slug: str
    job_version: str
    attempt: int
    priority: int = 0
    tags: list[str] = []


Message = ExecuteJobRun
MessageType = Literal["ExecuteJobRun"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ExecuteJobRun)


def encode_message(message: Message) -> bytes:
    return _encoder.encode(message)


def decode_message(value: bytes) -> Message:
    return _decoder.decode(value)
