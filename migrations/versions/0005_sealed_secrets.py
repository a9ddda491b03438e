"""Environments' API keys are kept sealed (Fernet, under JOBS_SECRET_KEY): the column says so.

SQL cannot seal: the keys stored in plain text until now are marked `plaintext:` here, and the first process
that starts with JOBS_SECRET_KEY (or `jobs-service secrets rotate`) seals them.

Revision ID: 0005
Revises: 0004
"""

from migrations.sql import execute_all

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = (
    "ALTER TABLE environment_secrets RENAME COLUMN api_key TO sealed_api_key",
    "UPDATE environment_secrets SET sealed_api_key = 'plaintext:' || sealed_api_key",
)

# Going back needs the keys in plain text, which only the service can give; refuse rather than lose them.
DOWNGRADE = (
    """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM environment_secrets WHERE NOT starts_with(sealed_api_key, 'plaintext:')) THEN
        RAISE EXCEPTION 'environment_secrets holds sealed API keys, which SQL cannot open: '
            'after a downgrade their environments would have no usable key';
    END IF;
END $$
    """,
    "UPDATE environment_secrets SET sealed_api_key = substr(sealed_api_key, length('plaintext:') + 1)",
    "ALTER TABLE environment_secrets RENAME COLUMN sealed_api_key TO api_key",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
