"""Every labelled parent text: emergencies must never be missed, and levels must mostly be exact."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from smsbot.triage import LEVELS, assess, severity
from smsbot.triage.scores import score

DATA = Path(__file__).parents[2] / "corpus"
DEV = yaml.safe_load((DATA / "dev_cases.yaml").read_text(encoding="utf-8"))
EXTRA = yaml.safe_load((DATA / "extra_cases.yaml").read_text(encoding="utf-8"))
# Red-team texts (written before running them); shape as EXTRA plus a `why` per case.
REDTEAM = yaml.safe_load((DATA / "redteam_cases.yaml").read_text(encoding="utf-8"))


def _id(case: dict) -> str:
    return f"{case['level']}:{case['text'][:50]}"


@pytest.mark.parametrize("case", DEV + EXTRA + REDTEAM, ids=_id)
def test_it_never_misses_an_emergency_and_answers_in_the_parents_language(case: dict) -> None:
    decision = assess(case["text"])
    if case["level"] == "emergency":
        assert decision.level == "emergency", decision
    assert decision.lang == case["lang"]


@pytest.mark.parametrize("case", [c for c in DEV + EXTRA + REDTEAM if c["level"] == "urgent"], ids=_id)
def test_it_never_under_triages_an_urgent_case(case: dict) -> None:
    assert severity(assess(case["text"]).level) >= severity("urgent")


def report(cases: list[dict]) -> tuple[float, str]:
    """Exact accuracy and a printable per-level recall and confusion matrix (rows: label)."""
    labels = [case["level"] for case in cases]
    answers = [assess(case["text"]).level for case in cases]
    confusion = Counter(zip(labels, answers, strict=True))
    exact = score(labels, answers).exact
    order = LEVELS[::-1]
    lines = [f"exact {exact:.1%} of {len(cases)}", "label\\got  " + " ".join(f"{lv:>9}" for lv in order)]
    for want in order:
        total = sum(confusion[(want, got)] for got in order)
        row = " ".join(f"{confusion[(want, got)]:>9}" for got in order)
        lines.append(f"{want:<10} {row}   recall {confusion[(want, want)]}/{total}")
    return exact, "\n".join(lines)


@pytest.mark.parametrize("cases", [DEV, EXTRA, REDTEAM], ids=["dev", "extra", "redteam"])
def test_exact_level_accuracy_is_at_least_95_percent(cases: list[dict]) -> None:
    exact, table = report(cases)
    print(table)
    assert exact >= 0.95, table
