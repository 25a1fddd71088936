"""The matcher reads texts as parents write them: rule by rule behaviour through ``assess``."""

from __future__ import annotations

import pytest

from smsbot.triage import Decision, assess, load_rules
from smsbot.triage.matcher import normalise, tokenise


def fired(text: str, **kwargs) -> Decision:
    """What the rules decide: the matcher's reading, without the learned second opinion
    (``test_triage_classifier.py`` covers what that may add)."""
    return assess(text, classifier=None, **kwargs)


def test_normalise_strips_case_accents_and_apostrophes() -> None:
    assert normalise("Está MORADO, isn't he?") == "esta morado, isnt he?"


def test_tokenise_keeps_numbers_and_turns_emoji_into_sentence_breaks() -> None:
    assert tokenise("temp 38,2C 😭 hes ok") == ["temp", "38,2", "c", ".", "hes", "ok"]


def test_tokenise_reads_listed_emoji_as_words_and_keeps_others_as_breaks() -> None:
    table = {"🔵": "blue", "🌡": "temp"}
    assert tokenise("lips 🔵😰 🌡️ 38,2", table) == ["lips", "blue", ".", "temp", "38,2"]
    assert tokenise("lips 🔵", None) == ["lips", "."]


@pytest.mark.parametrize(
    ("text", "level", "flag", "lang"),
    [
        ("her lips 🔵", "emergency", "colour-change", "en"),
        ("lips 💙😰 and his legs are shaking", "emergency", "colour-change", "en"),
        ("his face went 🩶 and hes twitching", "emergency", "colour-change", "en"),
        ("lips 💜 and legs jerking", "emergency", "colour-change", "en"),
        ("se le pusieron los labios 🟣 y tiembla", "emergency", "colour-change", "es"),
        ("🌡️ 38.4 y le tiemblan las piernas", "emergency", "fever-under-3-months", "es"),
        ("shes 🤒 and shaky", "emergency", "fever-reported-under-3-months", "en"),
        ("he got into my 💊 and now hes shaky", "emergency", "swallowed-medicine-or-drug", "en"),
        ("esta muy 😴 y tiembla", "urgent", "sleepier-than-usual", "es"),
    ],
)
def test_emoji_that_stand_for_words_are_read_as_words(text: str, level: str, flag: str, lang: str) -> None:
    decision = fired(text)
    assert (decision.level, decision.lang) == (level, lang)
    assert flag in decision.flags


@pytest.mark.parametrize(
    "text",
    ["thank you so much 💙", "muchas gracias 💜", "ok 👍", "legs 🫨 when crying, stops when i hold him"],
)
def test_emoji_as_words_do_not_over_triage_thanks_and_benign_texts(text: str) -> None:
    assert fired(text).level in ("info", "routine")


def test_an_emoji_is_read_in_the_language_of_the_text() -> None:
    from smsbot.triage.engine import engine_for

    lexicon = engine_for(load_rules()).lexicon
    assert lexicon.tokens("labios 🔵", "es") == ["labios", "azul"]
    assert lexicon.tokens("lips 🔵", "en") == ["lips", "blue"]
    assert fired("no esta 🔵, solo tiembla cuando llora").level == "routine"


def test_repeated_letters_still_match() -> None:
    assert fired("hes sooo stifff and shaking").level == "emergency"
    assert "colour-change" in fired("his lips are bluee").flags


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("her legs are shakking and she is unresponsve", "unresponsive"),
        ("he is breathng funny and twitching", "breathing-stopped"),
        ("tiene la mollera abultadda y tiembla", "bulging-soft-spot"),
    ],
)
def test_long_misspelled_words_match_fuzzily(text: str, flag: str) -> None:
    assert flag in fired(text).flags


def test_short_words_are_never_fuzzy_matched() -> None:
    ruleset = load_rules()
    from smsbot.triage.engine import engine_for

    canonical = engine_for(ruleset).lexicon.canonical
    assert canonical("shots") == "shots"  # not "shakes"
    assert canonical("limb") == "limb"  # not "limp"
    assert fired("she had her shots today").level == "info"


@pytest.mark.parametrize(
    "text",
    [
        "no fever, legs shake when crying",
        "not blue, isnt stiff, just shaky when hungry",
        "hes never turned blue, shakes when he cries",
        "hasnt had a fever, trembly when crying",
        "no tiene fiebre, tiembla cuando llora",
        "sin fiebre ni vomito, tiembla al llorar",
        "no esta morado, le tiemblan las piernas al llorar",
        "ni morado ni tieso, solo tiembla cuando llora",
    ],
)
def test_negated_red_flags_do_not_fire(text: str) -> None:
    assert fired(text).level == "routine"


def test_negation_ends_at_but_and_does_not_cancel_other_flags() -> None:
    assert fired("no fever but hes limp and shaking").level == "emergency"
    assert fired("no tiene fiebre pero no despierta y tiembla").level == "emergency"
    assert fired("no fever, hes floppy").level == "emergency"


def test_not_sure_is_not_a_negation() -> None:
    assert fired("not sure if hes breathing right, his arms are jerking").level == "emergency"


def test_past_events_still_count() -> None:
    assert fired("yesterday he turned blue while shaking, fine now").level == "emergency"
    assert fired("earlier his eyes rolled back and he jerked, now fine").level == "emergency"
    assert fired("ya paso pero dejo de respirar cuando temblaba").level == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "wrapped in her blue blanket, legs shake when she cries",
        "shaking the bottle to mix formula and his chin quivers when he cries",
        "the new onesie fits him, arms jerk when startled",
        "he had his shots today and shakes a little when crying",
        "he has blue eyes and trembles when crying",
    ],
)
def test_look_alikes_do_not_fire(text: str) -> None:
    assert fired(text).level == "routine"


@pytest.mark.parametrize(
    "text",
    [
        "no breathing problems, legs shake when crying",
        "hes not breathing fast or anything, just shakes when crying",
        "it happens but not right after feeds, shakes when crying",
        "she doesnt stop eating lol, shakes when crying",
        "she had a fit of hiccups and her legs shook a bit",
        "he grunts and goes a bit stiff when pooping, legs shake",
    ],
)
def test_phrases_that_contain_a_red_flag_word_do_not_fire(text: str) -> None:
    assert fired(text).level == "routine"


def test_shaking_the_bottle_alone_is_not_a_symptom() -> None:
    assert fired("i was shaking the bottle").level == "info"


@pytest.mark.parametrize(
    ("text", "temperature_f"),
    [
        ("temp 100.6 rectal", 100.6),
        ("it says 38.2C", 100.8),
        ("38,5 grados", 101.3),
        ("temp 101", 101.0),
        ("fever of 99.1F", 99.1),
        ("37.2 axila", 99.0),
    ],
)
def test_temperatures_in_f_and_c_with_or_without_units(text: str, temperature_f: float) -> None:
    assert fired(text).temperature_f == pytest.approx(temperature_f)


def test_an_armpit_reading_at_the_celsius_edge_of_the_grey_zone_is_urgent() -> None:
    # 37.2 °C is the brief's twin of 99.0 °F; read as 98.96 °F it fell below the grey zone.
    decision = fired("Tiene 37.2 en la axila y anda temblorosa")
    assert decision.level == "urgent"
    assert "armpit-borderline" in decision.flags


@pytest.mark.parametrize(
    "text",
    [
        "born at 34 weeks, jittery when crying",
        "ate 4oz, shaky when hungry",
        "cried for 3 hrs",
        "shakes 20 times a day",
        "only 2 wet diapers",
        "shook for 5 min",
        "hes 100 percent fine, shakes when crying",
        "fed at 10:38",
    ],
)
def test_other_numbers_are_not_temperatures(text: str) -> None:
    assert fired(text).temperature_f is None


def test_fever_threshold_is_inclusive_and_counts_despite_no_fever() -> None:
    assert fired("rectal 100.4, jittery").level == "emergency"
    assert fired("rectal 38.0").level == "emergency"
    assert fired("rectal 100.3, jittery when crying").level == "routine"
    assert fired("no fever really, just 100.5").level == "emergency"


def test_low_temperature_is_an_emergency() -> None:
    assert fired("temp 96.5 and shaky").level == "emergency"
    assert fired("temp 35.9").level == "emergency"
    assert fired("temp 36.0, shaky when crying").level == "routine"


def test_armpit_grey_zone_is_urgent() -> None:
    assert fired("armpit temp 99.5, legs trembly").level == "urgent"
    assert fired("rectal temp 99.5, legs trembly when crying").level == "routine"


@pytest.mark.parametrize(
    ("text", "age_days"),
    [
        ("my 7 weeks old", 49),
        ("2 month old", 60),
        ("hes 9 wks", 63),
        ("my 2mo", 60),
        ("bebe de 2 meses", 60),
        ("hes 8 wks, born at 34 weeks", 56),
    ],
)
def test_baby_age_is_read_from_the_text(text: str, age_days: int) -> None:
    assert fired(text + " and shakes when crying").age_days == age_days


def test_fever_is_an_emergency_under_3_months_and_urgent_after() -> None:
    assert fired("temp 100.8, shaky").level == "emergency"  # age unknown: assume ~2 months
    assert fired("temp 100.8, shaky", baby_age_days=120).level == "urgent"
    assert fired("my 4 month old has 100.8").level == "urgent"
    assert fired("my 4 month old has 100.8", baby_age_days=50).level == "emergency"  # the younger age wins


def test_counts_before_wet_diapers() -> None:
    assert fired("only 2 wet diapers today, shaky").level == "urgent"
    assert fired("3 wet diapers in 24 hrs").level == "urgent"
    assert fired("7-8 wet diapers, shaky when crying").level == "routine"


def test_durations_count_only_when_they_are_how_long_it_lasted() -> None:
    assert fired("she has been crying for 3 hours, legs shake").level == "urgent"
    assert fired("eats every 3 hours, legs shake when crying").level == "routine"
    assert fired("legs shook for 6 minutes").level == "urgent"
    assert fired("fed him 10 minutes ago, legs shake when crying").level == "routine"


def test_highest_level_wins_and_flags_are_sorted_by_severity() -> None:
    decision = fired("only 2 wet diapers, legs shaking, lips blue")
    assert decision.level == "emergency"
    assert decision.flags == ("colour-change", "few-wet-diapers", "jitters-reported")


def test_question_with_a_symptom_is_triaged_as_the_symptom() -> None:
    assert fired("how long does jitteriness last? his legs shake when hes calm").level == "urgent"
    assert fired("what counts as a fever? hes 100.9").level == "emergency"


def test_no_symptom_is_info() -> None:
    assert fired("hi").level == "info"
    assert fired("how do i take a rectal temp").flags == ("faq-take-temperature",)


def test_language_can_be_forced_or_detected() -> None:
    assert fired("le tiemblan las piernas").lang == "es"
    assert fired("legs shake").lang == "en"
    assert fired("legs shake", lang="es").lang == "es"


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("temp is one hundred point eight", 100.8),
        ("temp of a hundred and one", 101.0),
        ("tiene treinta y ocho punto cinco", 101.3),
        ("38 punto 2 de temperatura", 100.8),
        ("ninety nine point one rectal", 99.1),
        ("TEMP ONE OH ONE POINT TWO", 101.2),
        ("fiebre de treinta y ocho o treinta y nueve", 102.2),
    ],
)
def test_temperatures_written_in_words_are_read(text: str, reading: float) -> None:
    assert assess(text).temperature_f == reading


def test_lone_number_words_are_not_temperatures() -> None:
    assert assess("she ate two oz, twenty one days old").temperature_f is None
    assert assess("oh no, temp is normal, she shook two or three times").temperature_f is None


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("lil one rly hard 2 wake n her arms r twitchy idk", "hard-to-wake"),
        ("stopped breathin 4 like 20 sec", "breathing-stopped"),
        ("struggling 2 breathe n shaky", "breathing-struggle"),
        ("cant get her 2 respond, shakin", "hard-to-wake"),
    ],
)
def test_texting_shorthand_and_digits_for_words_are_read(text: str, flag: str) -> None:
    decision = fired(text)
    assert decision.level == "emergency" and flag in decision.flags, decision


def test_digits_read_as_words_still_count_as_numbers() -> None:
    assert fired("only 2 wet diapers today n shes shaky").level == "urgent"
    assert fired("ate 4 oz, shaky when crying, stops when i hold her").level == "routine"
    assert fired("temp 38.2 rn,bby shaky").temperature_f is not None


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("mi bebe bomito verde y esta temblando", "green-vomit"),
        ("se le boltean los ojos y tiembla", "seizure-eyes"),
        ("no me ase caso y tiembla", "unresponsive"),
    ],
)
def test_spanish_spelled_by_ear_is_respelled(text: str, flag: str) -> None:
    decision = fired(text)
    assert decision.level == "emergency" and flag in decision.flags, decision


def test_respelling_leaves_known_words_and_english_alone() -> None:
    from smsbot.triage.engine import engine_for

    lexicon = engine_for(load_rules()).lexicon
    assert lexicon.tokens("se callo cuando lo cargue", "es")[1] == "callo"  # went quiet, not "cayo" (fell)
    assert lexicon.tokens("his nose is red", "en") == ["his", "nose", "is", "red"]
    assert fired("le tiembla la barbilla cuando yora, se calma con el pecho").level == "routine"
