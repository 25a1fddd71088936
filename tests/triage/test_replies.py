"""Replies: in the parent's language, within 2 SMS segments, always with the safety lines."""

from __future__ import annotations

import pytest

from smsbot.messaging.segments import count_segments, is_gsm7
from smsbot.triage import LEVELS, Decision, assess, load_rules
from smsbot.triage.corpus import load_corpus
from smsbot.triage.replies import budget_problems, render_reply
from smsbot.vocabulary import MAX_SEGMENTS

RULES = load_rules()
NOT_A_DIAGNOSIS = {"en": "not a diagnosis", "es": "no es un diagnostico"}
INFO_LINE = {
    "en": "If your baby has a symptom now, describe it; in an emergency call {n}.",
    "es": "Si su bebe tiene un sintoma ahora, describalo; en una emergencia llame al {n}.",
}


def every_decision() -> list[Decision]:
    """One decision per rule and topic (so every reason and answer is rendered), per language."""
    decisions = []
    for lang in ("en", "es"):
        decisions += [Decision(rule.level, (rule.id,), lang) for rule in RULES.rules]
        decisions += [Decision("info", (topic.id,), lang) for topic in RULES.topics]
        decisions += [Decision(level, (), lang) for level in LEVELS]
    return decisions


@pytest.mark.parametrize("decision", every_decision(), ids=lambda d: f"{d.level}-{d.lang}-{d.flags}")
@pytest.mark.parametrize("number", ["911", "+441234567890123"])
def test_every_reply_fits_two_segments_and_says_it_is_not_a_diagnosis(
    decision: Decision, number: str
) -> None:
    reply = render_reply(decision, emergency_number=number, rules=RULES)
    assert count_segments(reply) <= MAX_SEGMENTS
    assert NOT_A_DIAGNOSIS[decision.lang] in reply.lower()
    assert number in reply


def test_the_shipped_reply_templates_are_within_budget() -> None:
    assert budget_problems(RULES) == []


@pytest.mark.parametrize(
    ("text", "lead"), [("hes not breathing", "Call 112 now"), ("no respira", "Llame al 112 ahora")]
)
def test_emergency_replies_lead_with_the_action_and_the_number(text: str, lead: str) -> None:
    reply = render_reply(assess(text), emergency_number="112")
    assert reply.startswith(lead)


def test_emergency_reply_carries_the_reason_of_the_top_flag() -> None:
    reply = render_reply(assess("temp 100.6 and shaky"), emergency_number="911")
    assert "100.4F (38.0C) or higher in a baby under 3 months" in reply


@pytest.mark.parametrize("lang", ["en", "es"])
def test_info_replies_always_carry_the_symptom_line(lang: str) -> None:
    for text in ("hi", "how long does jitteriness last", "what counts as a fever"):
        reply = render_reply(assess(text, lang=lang), emergency_number="999")
        assert INFO_LINE[lang].format(n="999") in reply


def test_info_reply_answers_the_question_from_the_rules() -> None:
    reply = render_reply(assess("whats the number for poison control"), emergency_number="911")
    assert "1-800-222-1222" in reply


def test_routine_reply_teaches_how_to_observe() -> None:
    reply = render_reply(assess("legs shake when she cries"), emergency_number="911")
    for words in ("hold", "seizure", "how long", "video", "wet diapers", "temperature 100.4f"):
        assert words in reply.lower()


def test_spanish_decisions_get_spanish_replies() -> None:
    reply = render_reply(assess("le tiemblan las piernas cuando llora"), emergency_number="911")
    assert "Sujete el brazo o la pierna" in reply


def test_baby_name_is_used_and_dropped_when_it_would_break_the_budget() -> None:
    decision = assess("she stopped breathing for 20 seconds")
    assert "Stay with Ana" in render_reply(decision, emergency_number="911", baby_name="Ana")
    long_name = "Á" * 60  # forces UCS-2 and overflows 2 segments
    reply = render_reply(decision, emergency_number="911", baby_name=long_name)
    assert long_name not in reply
    assert count_segments(reply) <= MAX_SEGMENTS


def test_emergency_first_aid_fits_the_emergency() -> None:
    fever = render_reply(assess("temp 100.8 and shaky"), emergency_number="911")
    assert "on their side" not in fever  # seizure first aid only where a seizure is suspected
    assert fever.lower().count("fever medicine") == 1
    assert "note the time" in fever
    seizure = render_reply(assess("his eyes rolled up and his arms kept jerking"), emergency_number="911")
    assert "on their side" in seizure and "nothing in the mouth" in seizure
    assert seizure.startswith("Call 911 now")


def test_a_caregiver_is_asked_to_let_the_parent_know_without_raising_the_level() -> None:
    decision = assess("grandma here, his arms shake when he cries")
    assert decision.level == "routine"
    assert "caregiver-texting" in decision.flags
    assert render_reply(decision, emergency_number="911").endswith("Also tell the baby's parent.")


@pytest.mark.parametrize("decision", every_decision(), ids=lambda d: f"{d.level}-{d.lang}-{d.flags}")
def test_every_reply_is_gsm7_and_an_emergency_names_the_number_in_its_first_segment(
    decision: Decision,
) -> None:
    number = "+441234567890123"
    reply = render_reply(decision, emergency_number=number, rules=RULES)
    assert is_gsm7(reply)
    if decision.lang == "es":
        assert not set(reply) & set("áéíóú")
    if decision.level == "emergency":
        assert number in reply[:160]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("is this a seizure?? im scared", ("hold the shaking arm or leg", "call 911 now")),
        ("can i give him tylenol for the shaking?", ("no Tylenol", "gripe water")),
        ("what temperature is a fever?", ("100.4F (38.0C)",)),
        ("how do i take her temperature?", ("Rectal",)),
        ("puedo darle tylenol?", ("nada de Tylenol",)),
    ],
)
def test_questions_get_their_answer_from_the_rules(text: str, words: tuple[str, ...]) -> None:
    reply = render_reply(assess(text), emergency_number="911")
    for word in words:
        assert word in reply


def test_over_the_corpus_replies_fit_two_segments_in_gsm7_with_the_number_first() -> None:
    """Every labelled parent text, answered as a first text: the issue's bar for replies."""
    replies = [
        (decision.level, render_reply(decision, emergency_number="911", rules=RULES))
        for batch in load_corpus()
        for decision in (assess(case.text, rules=RULES) for case in batch.cases)
    ]
    assert sum(count_segments(reply) <= 2 for _, reply in replies) / len(replies) >= 0.95
    assert all(is_gsm7(reply) for _, reply in replies)
    assert all("911" in reply[:160] for level, reply in replies if level == "emergency")
