"""Fixtures shared by the integration tests."""

from collections.abc import AsyncIterator

import httpx
import pytest

from app.container import Container
from app.http_app import create_app


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The API in process, over ASGI, on the test's container."""
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client
