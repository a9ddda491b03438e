"""Calls to a user's endpoint in the trigger.dev v2 endpoint protocol (INDEX_ENDPOINT, EXECUTE_JOB)."""

from typing import Any

import httpx
import msgspec

PROTOCOL_VERSION = "2023-11-01"


class EndpointError(Exception):
    """The endpoint could not be reached, or answered outside the protocol."""


class EndpointClient:
    def __init__(self, timeout_seconds: float = 300.0) -> None:
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=10.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, url: str, api_key: str, action: str, body: Any) -> httpx.Response:
        try:
            return await self.http.post(
                url,
                content=msgspec.json.encode(body),
                headers={
                    "content-type": "application/json",
                    "accept": "application/json",
                    "x-trigger-api-key": api_key,
                    "x-trigger-action": action,
                    "x-trigger-version": PROTOCOL_VERSION,
                },
            )
        except httpx.HTTPError as error:
            raise EndpointError(f"could not reach {url}: {error.__class__.__name__}: {error}") from error

    async def index(self, url: str, api_key: str) -> list[dict[str, Any]]:
        response = await self.call(url, api_key, "INDEX_ENDPOINT", {})
        if response.status_code != 200:
            raise EndpointError(f"INDEX_ENDPOINT answered {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
            jobs = body["jobs"]
            if not isinstance(jobs, list) or not all(isinstance(j, dict) and "id" in j for j in jobs):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise EndpointError("INDEX_ENDPOINT answered without a valid `jobs` list") from None
        return [_job_metadata(job) for job in jobs]


def _job_metadata(job: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(job.get("version"), str):
        raise EndpointError(f"job {job.get('id')!r} in the index has no version")
    return job
