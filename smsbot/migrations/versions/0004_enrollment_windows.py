"""enrollment windows, per-clinic family details, per-enrollment consent

A clinic's enrollment now holds its own details of the family (baby's name and birth date,
language, time zone), when its consent text went out, and why it ended; every stretch it
followed the family with consent is a row of ``enrollment_windows``. Existing rows are
carried over: each enrollment gets the family's current details, and a consented one a
window from its consent to its end.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DETAILS = ("language", "timezone", "baby_name", "baby_birth_date")


def upgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=2), server_default="en", nullable=False))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("baby_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("baby_birth_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("consent_requested_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ended_reason", sa.String(length=20), nullable=True))

    op.create_table(
        "enrollment_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enrollment_windows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrollment_windows_enrollment_id"), ["enrollment_id"], unique=False
        )

    # Until now details were the family's, shared by every clinic: each clinic starts from them.
    family_value = "(SELECT families.{0} FROM families WHERE families.id = enrollments.family_id)"
    op.execute(
        "UPDATE enrollments SET " + ", ".join(f"{name} = {family_value.format(name)}" for name in DETAILS)
    )
    op.execute(
        "UPDATE enrollments SET consent_requested_at = ("
        " SELECT MAX(messages.created_at) FROM messages"
        " WHERE messages.family_id = enrollments.family_id AND messages.clinic_id = enrollments.clinic_id"
        " AND messages.kind = 'consent' AND messages.status <> 'failed')"
    )
    op.execute(
        "UPDATE enrollments SET ended_reason = CASE WHEN EXISTS ("
        " SELECT 1 FROM families WHERE families.id = enrollments.family_id"
        " AND families.opted_out_at = enrollments.ended_at) THEN 'opted_out' ELSE 'unenrolled' END"
        " WHERE status = 'ended'"
    )
    op.execute(
        "INSERT INTO enrollment_windows (enrollment_id, started_at, ended_at)"
        " SELECT id, consented_at, ended_at FROM enrollments WHERE consented_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("enrollment_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_windows_enrollment_id"))
    op.drop_table("enrollment_windows")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        for name in ("ended_reason", "consent_requested_at", *reversed(DETAILS)):
            batch_op.drop_column(name)
