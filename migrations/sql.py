"""What the revisions share: run a list of SQL statements (asyncpg takes one statement per call)."""

from collections.abc import Sequence

from alembic import op


def execute_all(statements: Sequence[str]) -> None:
    for statement in statements:
        op.execute(statement)
