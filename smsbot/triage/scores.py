"""How triage answers are scored against labels: one definition for eval, tests and batch files.

The names are the keys of a blind batch's ``first_run`` block, so recorded and current scores
compare field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from smsbot.vocabulary import LEVELS

# Calm texts (labels) and answers that send the family home (no call to anyone today).
CALM = ("routine", "info")


@dataclass(frozen=True)
class Scores:
    """Scores of one set of answers (None where the set has no text of that label)."""

    cases: int
    exact: float
    emergency_recall: float | None  # emergencies answered emergency
    emergencies_sent_home: int  # emergencies answered routine or info
    calm_answered_emergency: float | None  # share of routine + info texts answered emergency
    urgent_sent_home: int  # urgent texts answered routine or info

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Tally:
    """The counts behind Scores, so scores of several batches add up exactly."""

    cases: int = 0
    exact: int = 0
    emergencies: int = 0
    emergencies_caught: int = 0
    emergencies_sent_home: int = 0
    calm: int = 0
    calm_answered_emergency: int = 0
    urgent_sent_home: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def scores(self) -> Scores:
        return Scores(
            cases=self.cases,
            exact=self.exact / self.cases if self.cases else 0.0,
            emergency_recall=self.emergencies_caught / self.emergencies if self.emergencies else None,
            emergencies_sent_home=self.emergencies_sent_home,
            calm_answered_emergency=self.calm_answered_emergency / self.calm if self.calm else None,
            urgent_sent_home=self.urgent_sent_home,
        )


def tally(labels: Sequence[str], answers: Sequence[str]) -> Tally:
    """Count how ``answers`` (levels, in order) fare against ``labels``."""
    if len(labels) != len(answers):
        raise ValueError(f"{len(labels)} labels but {len(answers)} answers")
    unknown = {level for level in (*labels, *answers) if level not in LEVELS}
    if unknown:
        raise ValueError(f"unknown levels {sorted(unknown)}")
    pairs = list(zip(labels, answers, strict=True))
    return Tally(
        cases=len(pairs),
        exact=sum(want == got for want, got in pairs),
        emergencies=sum(want == "emergency" for want, _ in pairs),
        emergencies_caught=sum(want == got == "emergency" for want, got in pairs),
        emergencies_sent_home=sum(want == "emergency" and got in CALM for want, got in pairs),
        calm=sum(want in CALM for want, _ in pairs),
        calm_answered_emergency=sum(want in CALM and got == "emergency" for want, got in pairs),
        urgent_sent_home=sum(want == "urgent" and got in CALM for want, got in pairs),
    )


def score(labels: Sequence[str], answers: Sequence[str]) -> Scores:
    """Scores of ``answers`` against ``labels``."""
    return tally(labels, answers).scores()


def total(tallies: Iterable[Tally]) -> Tally:
    return sum(tallies, Tally())


def recorded(scores: Scores, labels: Sequence[str]) -> Tally:
    """The counts behind scores recorded as shares (a batch's ``first_run``), from its labels."""
    emergencies = sum(level == "emergency" for level in labels)
    calm = sum(level in CALM for level in labels)
    return Tally(
        cases=scores.cases,
        exact=round(scores.exact * scores.cases),
        emergencies=emergencies,
        emergencies_caught=round((scores.emergency_recall or 0.0) * emergencies),
        emergencies_sent_home=scores.emergencies_sent_home,
        calm=calm,
        calm_answered_emergency=round((scores.calm_answered_emergency or 0.0) * calm),
        urgent_sent_home=scores.urgent_sent_home,
    )
