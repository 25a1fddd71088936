"""A signed webhook replayed after an erasure is a no-op: the family stays erased."""

from __future__ import annotations

from sqlalchemy import func, select

from smsbot.models import ErasedSid, Family, Message
from tests.clinic_fixtures import *  # noqa: F403
from tests.web.test_webhook import reply_text

SID = "SM" + "e" * 32
EMERGENCY = "his lips are blue and he is jerking"


def test_a_replayed_text_after_erasure_neither_recreates_the_family_nor_replies(
    api, enroll_parent, text_bot, db
):
    family = enroll_parent()
    assert "911" in reply_text(text_bot(EMERGENCY, sid=SID))
    assert api("DELETE", f"/families/{family['id']}").status_code == 200
    replay = text_bot(EMERGENCY, sid=SID)
    assert reply_text(replay) is None
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Family)) == 0
        assert session.scalar(select(func.count()).select_from(Message)) == 0
        [kept] = session.scalars(select(ErasedSid.sid_hash)).all()
    assert SID not in kept and len(kept) == 64  # only a one-way hash of the id is kept
    # A new text from the same number is a new conversation, answered as usual.
    assert "911" in reply_text(text_bot(EMERGENCY, sid="SM" + "f" * 32))
