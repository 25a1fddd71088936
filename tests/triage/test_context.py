"""The context layer: only the baby's own, real, current signs count (clinical.md sec. 11)."""

from __future__ import annotations

import pytest

from smsbot.triage import assess, load_rules
from smsbot.triage.context import marks_of
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


@pytest.mark.parametrize(
    ("text", "level"),
    [
        # a thing told with its colour explains the sentence's other colour words ...
        (
            "hes wearing the blue onesie today so dont freak if i say the blue baby lol. "
            "arms tremble when hes crying and stop when i hold them",
            "routine",
        ),
        (
            "le puse su mameluco morado y su gorrito azul jaja. "
            "tiembla cuando llora y se le quita cargandola",
            "routine",
        ),
        # ... but not a colour the sentence ties to the baby's body or says the baby turned
        ("she has her blue blanket on and her lips look blue, shes shaking", "emergency"),
        ("in her white onesie and she went grey", "emergency"),
        # and only colours: a shake in the same sentence still counts
        ("in his blue onesie and his arm keeps jerking, it wont stop when i hold it", "emergency"),
    ],
)
def test_a_things_colour_is_not_the_babys(text: str, level: str) -> None:
    assert assess(text, classifier=None).level == level


def test_a_trigger_with_only_marks_only_the_findings_of_those_terms() -> None:
    engine = engine_for(load_rules())
    tokens = engine.lexicon.tokens("the blue onesie is on and the blue baby keeps jerking")
    matches = engine.lexicon.scan(tokens)
    scopes = [s for s in engine.context.scopes(tokens, matches) if s.trigger.only]
    assert scopes and all(s.trigger.only == {"colour_change"} for s in scopes)
    spans = {"colour_change": [(m.start, m.end) for m in matches if m.owner == "term:colour_change"]}
    second_blue = tokens.index("blue", tokens.index("blue") + 1)
    jerking = tokens.index("jerking")
    assert marks_of(scopes, second_blue, second_blue + 1, spans) == {"object"}
    assert marks_of(scopes, jerking, jerking + 1, spans) == frozenset()


@pytest.mark.parametrize(
    ("text", "level"),
    [
        # a fever told clauses before the visit that settled it (clinical.md 11.6) ...
        (
            "had a fever of 101 on monday, ER checked her and said it was a virus, sent us home. "
            "now temp is 98.6 and she trembles a bit when crying and stops when I hold her",
            "routine",
        ),
        (
            "tuvo fiebre el martes, lo llevamos a urgencias, le hicieron estudios y dijeron q estaba bien, "
            "ya no tiene. sigue con su temblorcito cuando llora q se le pasa al cargarlo",
            "routine",
        ),
        # ... not a fever since, not a visit denied, and not the sentence's other signs
        ("had a fever on monday, the ER said it was a virus, now its 101 again", "emergency"),
        (
            "tenia 38.4 anoche en la axila, hoy 37.6 y le tiemblan las piernas, no lo llevamos al doctor",
            "emergency",
        ),
        ("she had a fever of 101 last night, we havent been seen by a doctor", "emergency"),
        # a call is no visit: what a nurse line said does not settle a fever told clauses before
        ("shes 38.5, I called the nurse line and they said its probably a virus", "emergency"),
        ("she was stiff with her eyes rolled back, the ER said it was reflux and sent us home", "emergency"),
    ],
)
def test_a_fever_a_doctor_has_seen_no_longer_counts(text: str, level: str) -> None:
    assert assess(text, classifier=None).level == level


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("we did the glass test on her heat rash like you said and it faded right away", "info"),
        ("did the glass test, some spots faded but the purple ones didnt fade", "emergency"),
        ("did the glass test and the spots faded, except two that didnt fade", "emergency"),
    ],
)
def test_a_glass_test_that_faded_is_no_rash_that_stays(text: str, level: str) -> None:
    assert assess(text, classifier=None).level == level


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("cuanto es 100.4 en centigrados?", "info"),
        ("Is 100.4 the cutoff for rectal or armpit? Asking before I buy a thermometer", "info"),
        ("tiene 38.5, cuanto es en fahrenheit?", "emergency"),
    ],
)
def test_a_number_asked_about_is_no_reading(text: str, level: str) -> None:
    assert assess(text, classifier=None).level == level


@pytest.mark.parametrize(
    ("text", "level"),
    [
        # the parent's own ailment, and a look given, are no sign of the baby's
        (
            "I have a migraine and a stiff neck, dont worry about me lol. "
            "she only gets the jitters when shes hungry and they stop once she eats",
            "routine",
        ),
        ("i have a really bad feeling, hes not acting like my baby, shaky and weird", "emergency"),
        (
            "He gives me total side eye like he's rolling his eyes at my singing lol. "
            "Anyway his hands shake a bit when he's crying and stop when I hold him",
            "routine",
        ),
        ("she gave me side eye and then her eyes rolled back", "emergency"),
        # crying fits are crying; the startle (Moro) reflex is no stiffening or shaking of the baby's
        ("the shaking during crying fits is still there at 8 weeks, goes away when I swaddle", "routine"),
        (
            "se pone rigido un segundito cuando cierro la puerta fuerte y abre los brazos, despues nada",
            "routine",
        ),
        (
            "ta rigido un instante cuando lo acuesto rapido en la cuna, abre los bracitos y llora, y ya",
            "routine",
        ),
        (
            "grandpa was turning blue in the face yelling at the game and the baby startled, "
            "threw her arms out and shook for a sec, then totally fine",
            "routine",
        ),
        ("my boyfriend threw her on the bed and now shes not waking up right", "emergency"),
    ],
)
def test_other_peoples_signs_looks_fits_and_startles(text: str, level: str) -> None:
    assert assess(text, classifier=None).level == level
