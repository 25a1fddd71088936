"""The outbox: follow-ups of an inbound text, done after the webhook has answered; the
sequence of texts answered at once per family

Revision ID: 0009_o2_outbox
Revises: 0008
Create Date: 2026-12-04 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_o2_outbox"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"])
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answered_seq", sa.Integer(), nullable=True))
        batch_op.create_index("ux_messages_family_answered_seq", ["family_id", "answered_seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ux_messages_family_answered_seq")
        batch_op.drop_column("answered_seq")
    op.drop_index("ix_outbox_message_id", table_name="outbox")
    op.drop_table("outbox")
