"""The learned second opinion: what it reads, what it may do to a decision, and its artifact."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smsbot.cli import main
from smsbot.triage import assess, load_rules
from smsbot.triage.classifier import (
    ARTIFACT,
    Classifier,
    ClassifierFileError,
    Opinion,
    read_classifier,
    shipped_classifier,
    vouch,
)
from smsbot.triage.corpus import Batch, Case
from smsbot.triage.features import DIMENSIONS, HASH_BITS, hashed_ngrams, normalise
from smsbot.triage.training import CAPS, FOLDS, calibrate, folds_of

CORPUS = Path(__file__).parents[2] / "corpus"
ROUTINE = "legs shake when she cries, stops when i hold them"
EMERGENCY = "babys lips look blue and hes jerking"


def with_thresholds(emergency: float, urgent: float) -> Classifier:
    """The shipped weights with other thresholds (0.0 always passes, 1.0 never does)."""
    return shipped_classifier().calibrated({"emergency": emergency, "urgent": urgent})


def assert_raised_to_urgent_at_most(text: str) -> None:
    """A classifier that would raise anything to emergency raises ``text`` to urgent only."""
    decision = assess(text, classifier=with_thresholds(emergency=0.0, urgent=0.0))
    assert decision.level == "urgent"
    assert decision.flags[0].startswith("model:urgent:")


def test_case_accents_and_spacing_do_not_change_what_it_reads() -> None:
    assert normalise("  Está   MORADO\n") == " esta morado "
    a, b = hashed_ngrams("Está MORADO"), hashed_ngrams("esta   morado")
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_character_ngrams_stay_inside_words_and_word_pairs_are_read() -> None:
    buckets, words_start = hashed_ngrams("ab cd")
    # " ab " and " cd ": six 2-grams, four 3-grams, two 4-grams; nothing spans "b c".
    assert words_start == 12
    # "ab", "cd", then the pair "ab cd", in the word block's buckets.
    assert len(buckets) - words_start == 3
    assert all(b >= 1 << HASH_BITS for b in buckets[words_start:])
    assert all(0 <= b < DIMENSIONS for b in buckets)


def test_the_shipped_artifact_loads_and_gives_probabilities() -> None:
    classifier = read_classifier(ARTIFACT)
    p = classifier.probabilities(EMERGENCY)
    assert len(p) == 4 and abs(sum(p) - 1) < 1e-6
    assert max(range(4), key=p.__getitem__) == 3  # the corpus is full of blue lips
    assert 0 < classifier.thresholds["emergency"] < 1 and 0 < classifier.thresholds["urgent"] < 1


def test_it_vouches_for_the_most_severe_level_past_its_threshold() -> None:
    thresholds = {"emergency": 0.8, "urgent": 0.7}
    assert vouch([0.0, 0.1, 0.05, 0.85], thresholds) == Opinion("emergency", 0.85)
    assert vouch([0.0, 0.35, 0.35, 0.3], thresholds) is None
    # P(urgent or emergency) is what the urgent threshold sees: neither alone passes here.
    assert vouch([0.0, 0.1, 0.5, 0.4], thresholds) == Opinion("urgent", pytest.approx(0.9))
    assert Opinion("urgent", 0.874).flag == "model:urgent:0.87"


def test_it_raises_a_calm_decision_and_names_itself_first_in_the_flags() -> None:
    rules_only = assess(ROUTINE, classifier=None)
    eager = with_thresholds(emergency=1.0, urgent=0.0)
    decision = assess(ROUTINE, classifier=eager)
    assert rules_only.level == "routine"
    assert decision.level == "urgent"
    assert decision.flags[0].startswith("model:urgent:")
    assert decision.flags[1:] == rules_only.flags
    assert decision.model_version == eager.version


def test_it_never_lowers_a_level() -> None:
    never = with_thresholds(emergency=1.0, urgent=1.0)
    for text in (EMERGENCY, "she has a fever of 38.5", ROUTINE):
        assert assess(text, classifier=never).level == assess(text, classifier=None).level
    # A classifier that would only say "urgent" leaves an emergency alone.
    emergency = assess(EMERGENCY, classifier=with_thresholds(emergency=1.0, urgent=0.0))
    assert emergency.level == "emergency"
    assert not any(flag.startswith("model:") for flag in emergency.flags)


@pytest.mark.parametrize(
    "text",
    [
        "My husband has a fever of 39 and chills, should he stay away from the baby? she is fine",
        "her older brother has the flu, fever 102 and shaking chills, anything we should do for the baby?",
        "hes wearing the blue onesie today so dont freak if i say the blue baby lol, he is fine",
        # set aside by the grunting rule's own exception (straining), not by context
        "twitching a little while pooping and grunting, done in a minute and happy",
    ],
)
def test_it_may_not_call_an_emergency_when_every_red_flag_is_set_aside(text: str) -> None:
    assert assess(text, classifier=None).red_flags_set_aside
    assert_raised_to_urgent_at_most(text)


@pytest.mark.parametrize(
    "text",
    [
        ROUTINE,
        "got chilly at the bus stop and his arms were shivery, once I zipped him in my coat it stopped",
        "le temblaban los brazos de tanto llorar, lo cargue y se calmo",
        "just a weird one jerk thing as he was dozing off tonight, only once",
        "se pujaba mucho para hacer popo y le temblaban las piernitas del esfuerzo",
    ],
)
def test_it_may_say_urgent_but_not_emergency_when_the_jitters_are_the_benign_kind(text: str) -> None:
    flags = assess(text, classifier=None).flags
    assert {"jitters-settle-when-soothed", "jitters-with-a-benign-trigger"} & set(flags)
    assert_raised_to_urgent_at_most(text)


def test_a_hold_test_that_failed_is_no_sign_of_settling() -> None:
    text = "her leg keeps jerking, it doesnt stop when I hold it"
    assert "jitters-settle-when-soothed" not in assess(text, classifier=None).flags


@pytest.mark.parametrize(
    "text",
    [
        # no red flag named at all: a red flag told without its words is what the model is for
        "his right leg keeps kind of pumping even when i press it flat on the mattress with my hand",
        # a denial is not set aside: the rules may misread it ("no paran" is a hold test that failed)
        "le dan brinquitos en el brazo que no paran aunque se lo detengo y esta babeando",
        # one red flag is someone else's, another is the baby's
        "my husband has a fever of 39 and the baby is 38.5 and shaky when she cries",
    ],
)
def test_it_may_still_call_an_emergency_when_a_red_flag_is_left(text: str) -> None:
    assert not assess(text, classifier=None).red_flags_set_aside
    assert assess(text, classifier=with_thresholds(emergency=0.0, urgent=0.0)).level == "emergency"


def test_it_does_not_speak_for_a_baby_older_than_its_corpus() -> None:
    eager = with_thresholds(emergency=1.0, urgent=0.0)
    assert assess(ROUTINE, baby_age_days=90, classifier=eager).level == "urgent"
    older = assess(ROUTINE, baby_age_days=120, classifier=eager)
    assert older.level == "routine" and older.model_version is None
    # A fever is urgent at four months: a text-only classifier would answer as for two months.
    fever = assess("temp 100.6", baby_age_days=120)
    assert fever.level == "urgent" and fever.model_version is None


def test_it_does_not_speak_on_a_text_shorter_than_its_corpus_knows() -> None:
    # The corpus's short symptom texts are nearly all emergencies: the commonest first text
    # must not read as one.
    assert assess("my baby is shaking").level == "routine"
    eager = with_thresholds(emergency=0.0, urgent=0.0)
    short = assess("my baby is shaking", classifier=eager)
    assert short.level == "routine" and short.model_version is None
    longer = assess("my baby is shaking and i would like to know what it means", classifier=eager)
    assert longer.level == "emergency" and longer.model_version == eager.version


def test_it_is_not_asked_about_news_that_is_no_symptom_report() -> None:
    # Trained on symptom reports, it read a NICU admission as an emergency: a 911 reply and a
    # page for a baby already in intensive care.
    eager = with_thresholds(emergency=0.0, urgent=0.0)
    for text in (
        "she was admitted to the hospital tonight, they are watching her breathing in the NICU",
        "la internaron anoche, le estan vigilando la respiracion en terapia intensiva",
    ):
        decision = assess(text, classifier=eager)
        assert (decision.level, decision.model_version) == ("info", None)
        assert "news-hospital" in decision.flags


def test_decisions_name_the_rule_set_and_the_classifier_consulted() -> None:
    decision = assess(ROUTINE)
    assert decision.rules_version == load_rules().version
    assert decision.model_version == shipped_classifier().version
    assert assess(ROUTINE, classifier=None).model_version is None
    # The rules already said emergency: there was nothing to ask the classifier.
    assert assess(EMERGENCY).model_version is None


def batch(name: str, size: int, *, frozen: bool = False) -> Batch:
    cases = tuple(Case(f"{name} text {i}", "routine", "en") for i in range(size))
    return Batch(name, cases, None, frozen)


def test_whole_files_take_turns_as_folds_and_frozen_ones_are_left_out() -> None:
    files = [batch(f"b{i}.yaml", 2) for i in range(FOLDS + 1)]
    cases, folds = folds_of([*files[:3], batch("frozen/b9.yaml", 4, frozen=True), *files[3:]])
    assert [c.text for c in cases] == [c.text for f in files for c in f.cases]
    assert list(folds) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 0]


def test_a_corpus_of_few_files_is_split_by_text() -> None:
    cases, folds = folds_of([batch("dev.yaml", 50)])
    assert len(cases) == 50
    assert set(folds) == set(range(FOLDS))


def test_calibration_raises_at_most_the_capped_share_of_calm_texts() -> None:
    rng = np.random.default_rng(3)
    labels = ["routine"] * 600 + ["info"] * 200 + ["urgent"] * 300 + ["emergency"] * 400
    probabilities = rng.dirichlet(np.ones(4), size=len(labels))
    covered = np.arange(len(labels)) % 10 != 0  # one text in ten too short to speak on
    thresholds, facts = calibrate(probabilities, labels, covered)
    calm = np.array([label in ("routine", "info") for label in labels]) & covered
    emergency = probabilities[:, 3]
    at_least_urgent = probabilities[:, 2] + emergency
    assert np.mean(emergency[calm] > thresholds["emergency"]) <= CAPS["emergency"]
    assert np.mean(at_least_urgent[calm] > thresholds["urgent"]) <= CAPS["urgent"]
    # ... and not far below it: the lowest threshold that keeps to the cap.
    assert np.mean(emergency[calm] > thresholds["emergency"] - 0.01) > CAPS["emergency"] / 2
    assert facts["emergency"]["calm_raised"] <= CAPS["emergency"]


def test_a_damaged_or_foreign_artifact_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bin"
    broken.write_bytes(ARTIFACT.read_bytes()[:1000])
    with pytest.raises(ClassifierFileError, match="unreadable"):
        read_classifier(broken)
    payload = gzip.decompress(ARTIFACT.read_bytes())
    line, _, arrays = payload.partition(b"\n")
    header = json.loads(line)
    header["hash_bits"] = HASH_BITS + 1
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(gzip.compress(json.dumps(header).encode() + b"\n" + arrays))
    with pytest.raises(ClassifierFileError, match="hash_bits"):
        read_classifier(foreign)


def test_train_rebuilds_the_shipped_artifact_exactly(tmp_path: Path) -> None:
    out = tmp_path / "classifier.bin"
    result = CliRunner().invoke(main, ["triage", "train", "--corpus", str(CORPUS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(ARTIFACT.read_bytes())
    assert read_classifier(out).version == shipped_classifier().version
    assert f"version {shipped_classifier().version}" in result.output


def test_train_leaves_the_frozen_slice_out(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "frozen").mkdir(parents=True)
    (corpus / "dev_cases.yaml").write_bytes((CORPUS / "dev_cases.yaml").read_bytes())
    (corpus / "frozen" / "b99.yaml").write_bytes((CORPUS / "extra_cases.yaml").read_bytes())
    out = tmp_path / "classifier.bin"
    result = CliRunner().invoke(main, ["triage", "train", "--corpus", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert read_classifier(out).training["texts"] == 120
