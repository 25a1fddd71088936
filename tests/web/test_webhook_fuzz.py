"""Arbitrary form data thrown at ``/twilio/sms``: never a 500, never corrupt state."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from smsbot.models import Message

FIELDS = ["MessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "SmsSid", "OptOutType", "X"]
phones = st.sampled_from(["+15550100001", "whatsapp:+15550100002", "+447700900123", "", "abc", "+1"])
text = st.text(max_size=300) | st.sampled_from(
    ["STOP", "help", "her lips are blue", "'; DROP TABLE messages;--"]
)
forms = st.dictionaries(st.sampled_from(FIELDS), text, max_size=6).flatmap(
    lambda form: st.fixed_dictionaries({"From": phones}).map(lambda extra: {**form, **extra})
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=forms)
def test_arbitrary_form_data_never_breaks_the_webhook(post_signed, db, form):
    response = post_signed("/twilio/sms", form)
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.get_json()["error"]["message"]
    with db.session() as session:
        # Every processed inbound has at most one reply, and no reply is orphaned.
        replies_per_inbound = session.execute(
            select(Message.reply_to_id, func.count())
            .where(Message.direction == "out")
            .group_by(Message.reply_to_id)
        ).all()
        assert all(reply_to is not None and n == 1 for reply_to, n in replies_per_inbound)
        stuck = session.scalar(select(func.count()).where(Message.status.in_(("processing", "failed"))))
        assert stuck == 0
