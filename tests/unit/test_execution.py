from domain.execution import from_response, from_transport_failure
from domain.status import RunStatus


def test_success_keeps_the_output() -> None:
    outcome = from_response(200, {"status": "SUCCESS", "output": {"n": 1}})
    assert (outcome.status, outcome.output, outcome.error) == (RunStatus.SUCCESS, {"n": 1}, None)


def test_error_fails_the_run_with_the_error() -> None:
    error = {"message": "boom", "name": "Error", "stack": "at x"}
    outcome = from_response(200, {"status": "ERROR", "error": error})
    assert (outcome.status, outcome.error) == (RunStatus.FAILURE, error)


def test_invalid_payload_and_unresolved_auth() -> None:
    errors = [{"path": ["n"], "message": "Required"}]
    invalid = from_response(200, {"status": "INVALID_PAYLOAD", "errors": errors})
    assert invalid.status is RunStatus.INVALID_PAYLOAD
    assert invalid.error is not None and invalid.error["errors"] == errors
    assert from_response(200, {"status": "UNRESOLVED_AUTH_ERROR", "issues": {}}).status is RunStatus.UNRESOLVED_AUTH


def test_a_4xx_fails_the_run_naming_the_status_code() -> None:
    outcome = from_response(404, None)
    assert outcome.status is RunStatus.FAILURE
    assert outcome.error == {"message": "Endpoint responded with 404 status code", "name": "EndpointError"}


def test_an_answer_outside_the_schema_fails_the_run() -> None:
    for body in (None, [], {"status": 3}, {"output": 1}):
        outcome = from_response(200, body)
        assert outcome.status is RunStatus.FAILURE
        assert outcome.error is not None and outcome.error["name"] == "InvalidEndpointResponse"


def test_transport_failure() -> None:
    outcome = from_transport_failure("connection refused")
    assert outcome.status is RunStatus.FAILURE
    assert outcome.error == {"message": "connection refused", "name": "EndpointUnreachable"}
