"""Erase and unenroll of one family at the same moment, on PostgreSQL: both paths take the
family's lock first, so one waits for the other; neither deadlocks nor answers 500."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from smsbot.models import CheckIn, Enrollment
from tests.clinic_fixtures import *  # noqa: F403

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("SMSBOT_TEST_BACKEND") != "postgres", reason="runs with SMSBOT_TEST_BACKEND=postgres"
    ),
]
FAMILIES = 25


def test_erase_and_unenroll_at_once_never_deadlock(app, db, world, enroll_consenting_parent):
    ids = [enroll_consenting_parent(f"+1555010{n:04d}")["id"] for n in range(FAMILIES)]
    with db.session() as session:
        assert session.scalar(select(func.count()).where(CheckIn.status == "pending")) >= FAMILIES
    headers = {"Authorization": f"Bearer {world.riverside_token}"}

    def call(path: str, barrier: threading.Barrier) -> int:
        client = app.test_client()
        barrier.wait()
        return client.delete("/api/v1" + path, headers=headers).status_code

    results = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for family_id in ids:
            barrier = threading.Barrier(2)
            erase = pool.submit(call, f"/families/{family_id}", barrier)
            unenroll = pool.submit(call, f"/families/{family_id}/enrollment", barrier)
            results.append((erase.result(), unenroll.result()))
    assert all(erased == 200 for erased, _ in results), results
    assert all(unenrolled in (200, 404) for _, unenrolled in results), results
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 0
