"""The OpenAPI document: what the API serves is what docs/openapi.json holds (so a change of the API is seen in
review), and every route says what it answers, needs and is about. Optional fields are left out, not null."""

import difflib
import json
from pathlib import Path
from typing import Any

import httpx

from app.container import Container
from app.http_app import openapi_document
from app.service.environments import EnvironmentInfo
from tests.helpers import register
from tests.node_endpoint import NodeEndpoint

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"
TAGS = {"catalog", "runs", "tasks", "events", "control", "store", "health"}
WITHOUT_KEY = {"/healthz", "/readyz", "/api/v1/runs/{run_id}/tasks/{task_id}/callback/{secret}"}


def auth(env: EnvironmentInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.api_key}"}


async def test_the_served_document_is_the_committed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/schema/openapi.json")).json()
    generated = openapi_document()
    assert json.loads(generated) == served, "`jobs-service openapi` must write the document the API serves"
    committed = COMMITTED.read_text(encoding="utf-8")
    if generated != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "docs/openapi.json", "served", lineterm="", n=2
        )
        shown = "\n".join(list(diff)[:80])
        raise AssertionError(
            "the API's OpenAPI document changed: review the difference below, then run `make openapi` "
            f"(`jobs-service openapi --output docs/openapi.json`) and commit docs/openapi.json\n{shown}"
        )


async def test_every_route_has_a_summary_a_tag_an_answer_schema_and_its_security(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert {tag["name"] for tag in document["tags"]} == TAGS
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    assert len(operations) >= 26
    for path, method, operation in operations:
        where = f"{path} {operation['operationId']}"
        assert operation.get("summary") and len(operation["tags"]) == 1 and operation["tags"][0] in TAGS, where
        expected = None if path in WITHOUT_KEY else [{"bearer": []}]
        assert operation.get("security") == expected, where
        for status, response in operation["responses"].items():
            if method == "head":  # an answer to HEAD has no body: none may be documented
                schemas = [content["schema"] for content in response.get("content", {}).values()]
                assert all(schema == {"type": "null"} for schema in schemas), f"{where}: {status} answers {schemas}"
                continue
            schema = response["content"]["application/json"]["schema"]
            assert _is_typed(document, schema), f"{where}: {status} answers {schema}"
        if path not in WITHOUT_KEY:
            assert "401" in operation["responses"], where


def _is_typed(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A schema that names its properties (a free-form object or `{}` says nothing)."""
    if "$ref" in schema:
        return _is_typed(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    if "oneOf" in schema:
        return all(_is_typed(document, option) for option in schema["oneOf"])
    if schema.get("type") == "array":
        return _is_typed(document, schema["items"])
    return schema.get("type") == "object" and bool(schema.get("properties"))


async def test_optional_fields_are_left_out_rather_than_null(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    """The v2 SDK's zod schemas take `nextCursor`, and a status's `state` and `data`, as absent or a value."""
    await register(container, environment, compat_endpoint)
    headers = auth(environment)
    started = [await client.post("/api/v1/jobs/return-value/test", json={}, headers=headers) for _ in range(3)]
    run_ids = [response.json()["runId"] for response in started]

    first = (await client.get("/api/v1/jobs/return-value/runs?take=2", headers=headers)).json()
    assert [run["id"] for run in first["runs"]] == run_ids[:0:-1]
    assert first["nextCursor"] == run_ids[1]
    last = (await client.get(f"/api/v1/runs?take=2&cursor={first['nextCursor']}", headers=headers)).json()
    assert [run["id"] for run in last["runs"]] == run_ids[:1]
    assert "nextCursor" not in last

    status = await client.put(f"/api/v1/runs/{run_ids[0]}/statuses/step", json={"label": "Step"}, headers=headers)
    assert status.json() == {"key": "step", "label": "Step", "history": []}
    run = (await client.get(f"/api/v2/runs/{run_ids[0]}", headers=headers)).json()
    assert "nextCursor" not in run
    assert run["statuses"] == [status.json()] and run["completedAt"] is None and run["output"] is None
