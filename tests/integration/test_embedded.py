from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.tools.embedded import EmbeddedKafka, EmbeddedPostgres


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_embedded_postgres(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    with pg:
        assert pg.url == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/jobs"
        pid = pg.pid
        assert pid is not None
        children = psutil.Process(pid).children(recursive=True)
        conn = await asyncpg.connect(pg.url.replace("+asyncpg", ""))
        try:
            assert await conn.fetchval("select 1") == 1
            assert await conn.fetchval("select current_database()") == "jobs"
        finally:
            await conn.close()
    assert pg.pid is None
    assert _gone(pid)
    assert all(_gone(child.pid) for child in children)
    assert _port_closed(pg.port)
    pg.stop()


async def test_embedded_kafka() -> None:
    kafka = EmbeddedKafka()
    with kafka:
        pid = kafka.pid
        assert pid is not None
        servers = kafka.bootstrap_servers
        producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=False, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("embedded.test", b"hello", key=b"k")
        finally:
            await producer.stop()
        # Tansu holds a JoinGroup for about session_timeout/2; a short session keeps the test fast.
        consumer = AIOKafkaConsumer(
            "embedded.test",
            bootstrap_servers=servers,
            group_id="embedded-test",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        try:
            message = await consumer.getone()
            await consumer.commit()
        finally:
            await consumer.stop()
        assert (message.key, message.value) == (b"k", b"hello")
    assert kafka.pid is None
    assert _gone(pid)
    assert _port_closed(kafka.port)
    kafka.stop()
