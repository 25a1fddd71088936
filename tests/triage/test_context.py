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


def test_an_aside_in_brackets_stays_in_its_clause() -> None:
    # The reading sits in brackets between the parent's fever and "myself".
    assert (
        assess("i have a cold and a fever (101) myself, baby is fine, just the jitters when she cries").level
        == "routine"
    )
    # A lone "(no)" still answers what came before it.
    answered = "my aunt says she needs cereal in her bottle (no). her arms shake when she cries"
    assert assess(answered).level == "routine"


@pytest.mark.parametrize(
    ("text", "level"),
    [
        # "no se" is "I don't know" only before what is not known; "no se pone morada" is a denial
        (
            "No tiene fiebre, no se pone morada. Solo tiembla cuando la bano y se le quita al envolverla.",
            "routine",
        ),
        ("no se que le pasa, se puso morada y tiembla", "emergency"),
        # denying the calm jitters is no calm jitter; a red flag in the "when" clause still counts
        ("no, no tiembla cuando esta tranquilo, solo cuando llora y se le pasa al abrazarlo", "routine"),
        ("no shaking when calm, just the crying jitters that stop when I hold her", "routine"),
        ("there's no shaking when she turns blue, just stiff", "emergency"),
    ],
)
def test_denials_reach_what_they_deny(text: str, level: str) -> None:
    assert assess(text).level == level


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("what does mottled mean? the handout says to watch for it", "info"),
        (
            "what does it mean when their eyes roll up? hers did that 20 min ago while her arm was jerking",
            "emergency",
        ),
        ("Si un dia deja de respirar, le doy respiracion boca a boca o llamo primero al 911?", "info"),
        (
            "The doctor saw him today for his fever, said its a cold. "
            "He still has the hungry shakes that stop with the bottle",
            "routine",
        ),
    ],
)
def test_questions_plans_and_assessed_signs_against_reports(text: str, level: str) -> None:
    assert assess(text).level == level
