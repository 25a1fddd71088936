"""erased_sids; consent retries

``erased_sids`` keeps one-way hashes of the MessageSids of erased families' texts, so a
signed webhook replayed after an erasure is recognised and ignored. Each enrollment counts
its consent text's attempts, keeps the last failure's reason and when it is retried.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erased_sids",
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid_hash"),
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("consent_retry_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("consent_error", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_column("consent_error")
        batch_op.drop_column("consent_retry_at")
        batch_op.drop_column("consent_attempts")
    op.drop_table("erased_sids")
