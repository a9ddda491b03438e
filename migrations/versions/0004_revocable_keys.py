"""An environment's key can be revoked: it then has none.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE environments ALTER COLUMN api_key_hash DROP NOT NULL")


def downgrade() -> None:
    op.execute("DELETE FROM environments WHERE api_key_hash IS NULL")
    op.execute("ALTER TABLE environments ALTER COLUMN api_key_hash SET NOT NULL")
