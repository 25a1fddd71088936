"""erased_sids: one-way hashes of the MessageSids of erased families' texts

A signed webhook replayed after an erasure is recognised by its hash and ignored.

Revision ID: 0006_h2_erased_sids
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_h2_erased_sids"
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


def downgrade() -> None:
    op.drop_table("erased_sids")
