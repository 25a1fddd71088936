"""Escalation until acknowledged, staff roles, the two-way inbox and WhatsApp's SMS fallback

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clinics", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("emergency_delay_minutes", sa.Integer(), server_default="10", nullable=False)
        )
        batch_op.add_column(
            sa.Column("urgent_delay_minutes", sa.Integer(), server_default="60", nullable=False)
        )
        batch_op.add_column(sa.Column("clinic_hours_start", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("clinic_hours_end", sa.String(length=5), nullable=True))
        batch_op.add_column(
            sa.Column("whatsapp_sms_fallback", sa.Boolean(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=10), server_default="nurse", nullable=False))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_by", sa.String(length=254), nullable=True))
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_step", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_page_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_alerts_next_page_at"), ["next_page_at"], unique=False)
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("target", sa.String(length=20), nullable=True))
    op.create_table(
        "escalation_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("delay_minutes", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("escalation_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalation_contacts_clinic_id"), ["clinic_id"], unique=False)
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_events_alert_id"), ["alert_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_events_alert_id"))
    op.drop_table("alert_events")
    with op.batch_alter_table("escalation_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalation_contacts_clinic_id"))
    op.drop_table("escalation_contacts")
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.drop_column("target")
        batch_op.drop_column("step")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_next_page_at"))
        batch_op.drop_column("next_page_at")
        batch_op.drop_column("escalation_step")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("sent_by")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("clinics", schema=None) as batch_op:
        batch_op.drop_column("whatsapp_sms_fallback")
        batch_op.drop_column("clinic_hours_end")
        batch_op.drop_column("clinic_hours_start")
        batch_op.drop_column("urgent_delay_minutes")
        batch_op.drop_column("emergency_delay_minutes")
