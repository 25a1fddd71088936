"""followup hold (sensitive news) and the inbound sweeper's claim

Families get the hold their sensitive news puts on automated messages (a baby in hospital,
a baby who died). Inbound messages get a claim deadline and an attempt count, so texts left
unprocessed by a failed or dropped request are picked up, once, by the sweeper.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("followup_hold", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("followup_hold_since", sa.DateTime(), nullable=True))
    # Texts stored before this revision keep no claim: they are never swept (a reply by
    # REST to a text from long ago would do more harm than good).
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_messages_status_claimed", ["status", "claimed_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_status_claimed")
        batch_op.drop_column("attempts")
        batch_op.drop_column("claimed_until")
    with op.batch_alter_table("families", schema=None) as batch_op:
        batch_op.drop_column("followup_hold_since")
        batch_op.drop_column("followup_hold")
