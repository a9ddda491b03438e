"""Whether the service can reach what it needs: the database and the broker."""

import asyncio

from app.adapters.reads import ReadModels

CHECK_SECONDS = 2.0


class Readiness:
    def __init__(self, reads: ReadModels, bootstrap_servers: str) -> None:
        self.reads = reads
        self.bootstrap_servers = bootstrap_servers

    async def check(self) -> dict[str, bool]:
        return {"database": await self.database_ok(), "broker": await self.broker_ok()}

    async def database_ok(self) -> bool:
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await self.reads.ping()
        except Exception:
            return False
        return True

    async def broker_ok(self) -> bool:
        for server in self.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                async with asyncio.timeout(CHECK_SECONDS):
                    _, writer = await asyncio.open_connection(host or "localhost", int(port))
                writer.close()
                return True
            except (OSError, TimeoutError, ValueError):
                continue
        return False
