"""How the answer to an EXECUTE_JOB call decides what happens to a run (the trigger.dev v2 rules)."""

from dataclasses import dataclass
from typing import Any

from domain.status import RunStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    status: RunStatus
    output: Any = None
    error: dict[str, Any] | None = None


def from_transport_failure(reason: str) -> Outcome:
    return Outcome(RunStatus.FAILURE, error={"message": reason, "name": "EndpointUnreachable"})


def from_response(http_status: int, body: Any) -> Outcome:
    if http_status != 200:
        return Outcome(
            RunStatus.FAILURE,
            error={"message": f"Endpoint responded with {http_status} status code", "name": "EndpointError"},
        )
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        return _invalid("the endpoint's answer has no status")
    status = body["status"]
    if status == "SUCCESS":
        return Outcome(RunStatus.SUCCESS, output=body.get("output"))
    if status == "ERROR":
        return Outcome(RunStatus.FAILURE, error=_error(body.get("error")))
    if status == "INVALID_PAYLOAD":
        return Outcome(
            RunStatus.INVALID_PAYLOAD,
            error={"message": "Invalid payload", "name": "InvalidPayload", "errors": body.get("errors", [])},
        )
    if status == "UNRESOLVED_AUTH_ERROR":
        return Outcome(
            RunStatus.UNRESOLVED_AUTH,
            error={"message": "Unresolved auth", "name": "UnresolvedAuth", "issues": body.get("issues", {})},
        )
    return _invalid(f"execution status {status!r} is not supported by this service yet")


def _error(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict) and isinstance(raw.get("message"), str):
        return {k: raw[k] for k in ("message", "name", "stack") if k in raw}
    return {"message": str(raw), "name": "Error"}


def _invalid(message: str) -> Outcome:
    return Outcome(RunStatus.FAILURE, error={"message": message, "name": "InvalidEndpointResponse"})
