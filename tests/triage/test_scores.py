"""The scores every triage report uses, defined once (``smsbot.triage.scores``)."""

from __future__ import annotations

import pytest

from smsbot.triage.scores import Scores, recorded, score, tally

LABELS = ["emergency", "emergency", "emergency", "urgent", "urgent", "routine", "routine", "info"]
ANSWERS = ["emergency", "urgent", "routine", "info", "urgent", "emergency", "routine", "info"]


def test_scores_count_what_the_clinical_brief_cares_about() -> None:
    assert score(LABELS, ANSWERS) == Scores(
        cases=8,
        exact=4 / 8,
        emergency_recall=1 / 3,
        emergencies_sent_home=1,  # answered routine; the one answered urgent was not sent home
        calm_answered_emergency=1 / 3,
        urgent_sent_home=1,
    )


def test_scores_of_several_batches_add_up_from_their_counts() -> None:
    first, second = tally(LABELS[:3], ANSWERS[:3]), tally(LABELS[3:], ANSWERS[3:])
    assert (first + second).scores() == score(LABELS, ANSWERS)


def test_a_set_without_emergencies_or_calm_texts_has_no_share_for_them() -> None:
    scores = score(["urgent"], ["urgent"])
    assert scores.emergency_recall is None and scores.calm_answered_emergency is None


def test_shares_recorded_in_a_first_run_give_back_their_counts() -> None:
    assert recorded(score(LABELS, ANSWERS), LABELS) == tally(LABELS, ANSWERS)


def test_unknown_levels_and_unequal_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown levels"):
        score(["emergency"], ["911"])
    with pytest.raises(ValueError, match="1 labels but 2 answers"):
        score(["info"], ["info", "info"])
