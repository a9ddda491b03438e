"""Lower the CPU priority of the PostgreSQL backends serving an engine, when the server runs on this host.

A niced process whose backend is not niced still takes the database's CPU from everyone else: a rebuild's
reads, COPYs and index builds are done by its backends. Best effort: a remote server, a process this user may
not renice, or one that is not a PostgreSQL backend is left as it is.
"""

import logging
import os
from typing import Any

import psutil
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}
log = logging.getLogger(__name__)


def nice_backends(engine: AsyncEngine, added: int) -> None:
    """Each backend the engine connects to from now on gets `added` more niceness (at most 19)."""
    host = engine.url.host
    if added <= 0 or (host not in _LOCAL_HOSTS and not str(host).startswith("/")):
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _renice(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        finally:
            cursor.close()
        renice(int(pid), added)


def renice(pid: int, added: int) -> bool:
    """Whether the PostgreSQL backend `pid` on this host now runs `added` niceness lower."""
    try:
        backend = psutil.Process(pid)
        if not backend.name().startswith("postgres"):
            return False
        os.setpriority(os.PRIO_PROCESS, pid, min(19, backend.nice() + added))
        return True
    except (OSError, psutil.Error) as error:
        log.debug("could not renice backend %d: %s", pid, error)
        return False
