"""The context layer: only the baby's own, real, current signs count (clinical.md sec. 11)."""

from __future__ import annotations

import pytest

from smsbot.triage import assess, load_rules
from smsbot.triage.engine import engine_for


@pytest.mark.parametrize(
    ("text", "level"),
    [
        # whose sign
        ("my temp is 38.5, baby is 36.9 and only trembles when crying, stops when held", "routine"),
        ("my wife has a fever of 101 and chills, baby is fine, shaky only when crying", "routine"),
        ("my sisters baby has seizures, does that run in families?", "info"),
        (
            "mi sobrina tuvo convulsiones, mi bebe solo tiembla al llorar y se le quita al cargarla",
            "routine",
        ),
        (
            "she looks so cute in her blue onesie, her hands tremble when she cries and stop with the paci",
            "routine",
        ),
        # what if, and questions about what a sign looks like
        ("if she ever turns blue what do I do first?", "info"),
        ("what does a bulging soft spot feel like?", "info"),
        ("Que hago si algun dia se me pone morado?", "info"),
        # already seen by a doctor
        ("update: they discharged us, the doctor said the 100.6 was probably a virus. thanks!", "info"),
        # figures of speech
        (
            "my husband is convulsing with laughter, she trembles when crying and stops when held",
            "routine",
        ),
        # a one-word answer to the parent's own question
        ("Fiebre? no. Tiembla? solo cuando llora y se le quita al cargarla.", "routine"),
    ],
)
def test_signs_that_are_not_the_babys_own_real_current_signs_do_not_count(text: str, level: str) -> None:
    assert assess(text).level == level


@pytest.mark.parametrize(
    "text",
    [
        "is it normal that her lips turned blue when her legs were trembling?",
        "grandma dropped him and he hit his head, now hes twitchy",
        "my husband says her lips were blue and she was shaking",
        "my dog had a seizure and then the baby had one too",
        "his lips are blue in the car seat and hes shaking",
        "found my xanax bottle open next to the baby bouncer, hes trembling",
        "yesterday he turned blue for a few seconds, now hes fine but shaky",
        "the doctor said it was nothing last week, but now hes stiff and not responding",
        "i have a bad feeling, something is really wrong with him",
    ],
)
def test_the_babys_own_red_flags_still_count_around_context_cues(text: str) -> None:
    assert assess(text).level == "emergency"


def test_the_mothers_medicine_is_still_the_babys_exposure() -> None:
    assert (
        assess("mi esposa toma sertralina y le da pecho, el bebe anda muy nervioso y tembloroso").level
        == "urgent"
    )


def test_a_fever_long_ago_is_not_a_fever_now() -> None:
    assert (
        assess("she had 38.5 last week, now fine, trembles only when crying and stops when held").level
        == "routine"
    )
    assert assess("she had 38.5 yesterday, now fine, trembles only when crying").level == "emergency"


def test_a_finding_gets_its_marks() -> None:
    engine = engine_for(load_rules())
    tokens = engine.lexicon.tokens("my toddler has a fever, the baby is fine")
    matches = engine.lexicon.scan(tokens)
    scopes = engine.context.scopes(tokens, matches)
    fever = next(m for m in matches if m.owner == "term:fever_word")
    assert {s.trigger.mark for s in scopes if s.covers(fever.start, fever.end)} == {"other"}
