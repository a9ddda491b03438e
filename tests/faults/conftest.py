from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.service.environments import EnvironmentInfo
from app.settings import Settings
from tests.node_endpoint import NodeEndpoint


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
async def client(settings: Settings, environment: EnvironmentInfo) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {environment.api_key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", headers=headers, timeout=15) as client:
        yield client


async def register_endpoint(client: httpx.AsyncClient, endpoint: NodeEndpoint) -> None:
    response = await client.post("/api/v1/endpoints", json={"id": endpoint.endpoint_id, "url": endpoint.url})
    assert response.status_code == 200, response.text
