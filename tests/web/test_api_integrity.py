"""A write the database refuses: nothing is sent first, and the clash is named truthfully."""

from __future__ import annotations

from sqlalchemy import func, select

from smsbot.messaging.console import ConsoleTransport, MemoryTransport
from smsbot.models import Enrollment
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME
from tests.db_faults import fault


def test_console_ids_are_unique_across_processes(tmp_path):
    # Each process builds its own transport; a restarted one must not reuse an old id.
    with open(tmp_path / "console", "w") as stream:
        first, restarted = ConsoleTransport(stream), ConsoleTransport(stream)
        sids = {first.send("+15550100001", "hi"), restarted.send("+15550100001", "hi")}
    sids |= {MemoryTransport().send("+15550100001", "hi") for _ in range(100)}
    assert len(sids) == 102
    assert all(sid.startswith("SM") and len(sid) == 34 for sid in sids)


def test_no_consent_text_goes_out_when_its_record_cannot_be_written(api, db, outbox):
    with fault(db, "reply"):  # every INSERT of an outbound message fails in the database
        response = api("POST", "/families", json={"phone": "+15550100001", "programme": PROGRAMME})
    assert outbox.outbox == []
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] != "concurrent_update"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 0
    # The database takes writes again: enrolling now sends the one consent text.
    assert api("POST", "/families", json={"phone": "+15550100001", "programme": PROGRAMME}).status_code == 201
    assert len(outbox.outbox) == 1


class ReusingTransport(MemoryTransport):
    """A provider that hands out, again, the id it gave first."""

    def send(self, to: str, body: str, **opts: object) -> str:
        sid = super().send(to, body, **opts)
        return self.outbox[0].sid if len(self.outbox) > 1 else sid


def test_a_provider_id_clash_is_reported_as_what_it_is(app, api, db):
    app.extensions["smsbot.transport"] = ReusingTransport()
    assert api("POST", "/families", json={"phone": "+15550100001", "programme": PROGRAMME}).status_code == 201
    response = api("POST", "/families", json={"phone": "+15550100002", "programme": PROGRAMME})
    assert response.status_code == 500
    assert response.get_json()["error"] == {
        "code": "duplicate_key",
        "message": "a write clashed with stored data (messages); that write was undone, "
        "what was recorded before it stands",
        "field": None,
    }
    # The enrollment was recorded before its consent text went out; the text's outcome was not.
    families = {f["phone"]: f["consent"] for f in api("GET", "/families").get_json()["data"]}
    assert families == {"+15550100001": "requested", "+15550100002": "sending"}
