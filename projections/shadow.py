"""The shadow schema a rebuild fills: tables made like the live read models, then swapped in by renames.

Each shadow table copies its live table's columns, defaults, checks, storage parameters and grants; the
constraints a write resolves its conflicts on (primary key, unique) come first, the other indexes after the
bulk load (building an index once is far cheaper than keeping it up row by row). Index and constraint names
are the live ones, so migrations that name them keep working after a swap.
"""

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.tables import READ_MODELS

SHADOW = "projections_shadow"  # where a rebuild writes
OLD = "projections_old"  # where the replaced live tables go until they are dropped
LIVE = "public"

_CONSTRAINTS = text(
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = CAST(:table AS regclass) AND contype IN ('p', 'u', 'x') ORDER BY conname"
)
_INDEXES = text(
    "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
    "WHERE i.indrelid = CAST(:table AS regclass) "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY i.indexrelid"
)
_RELOPTIONS = text("SELECT array_to_string(reloptions, ', ') FROM pg_class WHERE oid = CAST(:table AS regclass)")
_GRANTS = text(
    "SELECT coalesce(quote_ident(r.rolname), 'PUBLIC'), a.privilege_type "
    "FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
    "WHERE c.oid = CAST(:table AS regclass) AND a.grantee <> c.relowner"
)


_DEPENDENTS = text(
    "SELECT DISTINCT c.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
    "JOIN pg_class c ON c.oid = r.ev_class WHERE d.refobjid = CAST(:table AS regclass) AND c.oid <> d.refobjid "
    "UNION SELECT conname || ' on ' || conrelid::regclass::text FROM pg_constraint "
    "WHERE confrelid = CAST(:table AS regclass) AND conrelid <> confrelid"
)
_KIND = text("SELECT relkind::text FROM pg_class WHERE oid = CAST(:table AS regclass)")
_PERSISTENCE = text("SELECT relpersistence::text FROM pg_class WHERE oid = CAST(:table AS regclass)")


def _live(table: Table) -> str:
    return f"{LIVE}.{table.name}"


async def drop_leftovers(conn: AsyncConnection) -> None:
    """What an earlier rebuild left: a shadow it never swapped in (it crashed), or old tables it swapped out."""
    for schema in (SHADOW, OLD):
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


async def check_swappable(conn: AsyncConnection) -> None:
    """Refuse what a swap by renames would get wrong: a view or foreign key on a live table would follow it
    out and be dropped with it; a partitioned table would come back as a plain one."""
    for table in READ_MODELS:
        if (await conn.execute(_KIND, {"table": _live(table)})).scalar_one() != "r":
            raise RuntimeError(f"{table.name} is not a plain table: the rebuild cannot swap it")
        dependents = [name for (name,) in await conn.execute(_DEPENDENTS, {"table": _live(table)})]
        if dependents:
            raise RuntimeError(f"{', '.join(dependents)} depend(s) on {table.name}: the rebuild would drop them")


async def create_tables(conn: AsyncConnection) -> None:
    """Empty shadow tables with the live columns and the constraints writes resolve conflicts on. They start
    unlogged: the bulk load then writes no WAL (a crash drops the shadow anyway), so it does not slow the
    writers' commits, which wait for the WAL to reach the disk; `logged_statements` makes them logged after."""
    await conn.execute(text(f"CREATE SCHEMA {SHADOW}"))
    for table in READ_MODELS:
        shadow = f"{SHADOW}.{table.name}"
        await conn.execute(
            text(f"CREATE UNLOGGED TABLE {shadow} (LIKE {_live(table)} INCLUDING ALL EXCLUDING INDEXES)")
        )
        for name, definition in await conn.execute(_CONSTRAINTS, {"table": _live(table)}):
            await conn.execute(text(f'ALTER TABLE {shadow} ADD CONSTRAINT "{name}" {definition}'))
        options = (await conn.execute(_RELOPTIONS, {"table": _live(table)})).scalar()
        if options:
            await conn.execute(text(f"ALTER TABLE {shadow} SET ({options})"))
        for grantee, privilege in await conn.execute(_GRANTS, {"table": _live(table)}):
            await conn.execute(text(f"GRANT {privilege} ON {shadow} TO {grantee}"))


async def logged_statements(conn: AsyncConnection) -> list[str]:
    """What makes the filled shadow tables logged, as their live tables are (an unlogged live table stays so):
    each is written to the WAL once, page by page, rather than row by row as it was filled, and before the
    other indexes exist, so only its primary key is built again."""
    return [
        f"ALTER TABLE {SHADOW}.{table.name} SET LOGGED"
        for table in READ_MODELS
        if (await conn.execute(_PERSISTENCE, {"table": _live(table)})).scalar_one() == "p"
    ]


async def index_statements(conn: AsyncConnection) -> list[str]:
    """What builds the live tables' other indexes, under their names, on the filled shadow tables (each statement
    independent of the others, so they may run at once on several connections)."""
    statements = []
    for table in READ_MODELS:
        for (definition,) in (await conn.execute(_INDEXES, {"table": _live(table)})).all():
            target = f" ON {_live(table)} "
            if target not in definition:
                raise RuntimeError(f"unexpected index definition on {table.name}: {definition}")
            statements.append(definition.replace(target, f" ON {SHADOW}.{table.name} ", 1))
    return statements


def analyze_statements() -> list[str]:
    """Fresh statistics of the shadow tables, so the planner knows them from the first query after the swap."""
    return [f"ANALYZE {SHADOW}.{table.name}" for table in READ_MODELS]


async def lock_live(conn: AsyncConnection) -> None:
    """Take every live read model for the swap (readers and writers of them wait until the commit)."""
    names = ", ".join(_live(table) for table in READ_MODELS)
    await conn.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))


async def swap(conn: AsyncConnection) -> None:
    """Move the live tables out and the shadow ones in: catalog changes only, done in milliseconds. Statements
    other sessions prepared name the tables, not their identities, so PostgreSQL plans them again."""
    await conn.execute(text(f"CREATE SCHEMA {OLD}"))
    for table in READ_MODELS:
        await conn.execute(text(f"ALTER TABLE {_live(table)} SET SCHEMA {OLD}"))
        await conn.execute(text(f"ALTER TABLE {SHADOW}.{table.name} SET SCHEMA {LIVE}"))
