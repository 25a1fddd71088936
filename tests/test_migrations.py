"""The migrations build exactly the schema the models describe, and the latest one can be undone."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from smsbot.db import alembic_config, normalise_url, upgrade
from smsbot.models import Base


def schema_drift(url: str) -> list:  # type: ignore[type-arg]
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(database_url: str):
    assert schema_drift(database_url) == []


def test_the_latest_migration_downgrades_and_upgrades_again(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "-1")
    assert schema_drift(url) != []
    upgrade(url)
    assert schema_drift(url) == []
