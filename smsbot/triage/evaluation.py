"""``smsbot triage eval``: how triage scores on the labelled corpus, honestly.

Three kinds of figure, from least to most flattering of the engine:
- first run: recorded in a blind batch when it arrived, before anything was tuned on it;
- frozen: batches never trained or tuned on (only aggregate scores leave this module);
- cross-validated: the classifier scored on texts its fold did not see.
Current scores on the other files flatter the engine: its rules were tuned on them and the
shipped classifier learnt from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smsbot.triage.classifier import Classifier
from smsbot.triage.corpus import Batch, Case
from smsbot.triage.engine import assess
from smsbot.triage.model import RuleSet
from smsbot.triage.scores import Tally, recorded, tally, total
from smsbot.vocabulary import LEVELS


@dataclass(frozen=True)
class Line:
    """One row of the report: a set of texts answered one way."""

    what: str  # "first run", "rules", "rules+model", "model alone"
    tally: Tally
    note: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[Line, ...]


def _levels(cases: Sequence[Case]) -> list[str]:
    return [case.level for case in cases]


def _current(cases: Sequence[Case], ruleset: RuleSet, classifier: Classifier) -> tuple[Tally, Tally]:
    """(rules alone, rules + classifier) on ``cases``."""
    labels = _levels(cases)
    rules = [assess(c.text, rules=ruleset, classifier=None).level for c in cases]
    both = [assess(c.text, rules=ruleset, classifier=classifier).level for c in cases]
    return tally(labels, rules), tally(labels, both)


def _batch_lines(batch: Batch, rules: Tally, both: Tally) -> tuple[Line, ...]:
    lines = []
    if batch.first_run is not None:
        run = batch.first_run
        first = recorded(run.scores, _levels(batch.cases))
        lines.append(Line("first run", first, f"{run.date}, engine {run.engine}"))
    return (*lines, Line("rules", rules), Line("rules+model", both))


def _group(title: str, batches: Sequence[Batch], ruleset: RuleSet, classifier: Classifier) -> list[Section]:
    """A section per batch, then one for the batches together."""
    sections = []
    firsts, rules_all, both_all = [], [], []
    for batch in batches:
        rules, both = _current(batch.cases, ruleset, classifier)
        lines = _batch_lines(batch, rules, both)
        sections.append(Section(batch.name, lines))
        firsts += [line.tally for line in lines if line.what == "first run"]
        rules_all.append(rules)
        both_all.append(both)
    together = []
    if firsts:
        note = f"{len(firsts)} of {len(batches)} files recorded one"
        together.append(Line("first run", total(firsts), note))
    together += [Line("rules", total(rules_all)), Line("rules+model", total(both_all))]
    sections.append(Section(title, tuple(together)))
    return sections


def corpus_sections(batches: Sequence[Batch], ruleset: RuleSet, classifier: Classifier) -> list[Section]:
    """Per file and in total, then the frozen slice on its own."""
    open_batches = [b for b in batches if not b.frozen]
    frozen = [b for b in batches if b.frozen]
    sections = _group("all but frozen", open_batches, ruleset, classifier)
    if frozen:
        sections += _group("frozen slice (never trained or tuned on)", frozen, ruleset, classifier)
    return sections


def cross_validated_section(batches: Sequence[Batch], ruleset: RuleSet) -> Section:
    """Model alone, rules alone and rules + model, each text scored by the fold that did not see it."""
    from smsbot.triage.training import FOLDS, cross_validate

    validation = cross_validate(batches)
    cases = validation.cases
    labels = _levels(cases)
    model = [LEVELS[i] for i in validation.probabilities.argmax(axis=1)]
    rules = [assess(c.text, rules=ruleset, classifier=None).level for c in cases]
    # Each text triaged as a parent's would be, by the classifier of the fold that did not see it.
    both = [
        assess(case.text, rules=ruleset, classifier=validation.classifiers[fold]).level
        for case, fold in zip(cases, validation.folds, strict=True)
    ]
    thresholds = ", ".join(f"{level} > {t:.4f}" for level, t in validation.thresholds.items())
    return Section(
        f"cross-validated: {FOLDS} folds, out of fold, {len(cases)} texts",
        (
            Line("model alone", tally(labels, model), "most probable level"),
            Line("rules alone", tally(labels, rules), "the rules learn nothing: as in the table above"),
            Line("rules+model", tally(labels, both), f"raised above {thresholds}"),
        ),
    )


HEADER = f"{'':<34}{'cases':>6}{'E recall':>10}{'E home':>8}{'exact':>8}{'calm→E':>8}{'U home':>8}"


def format_line(line: Line) -> str:
    s = line.tally.scores()

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    cells = (
        f"  {line.what:<32}{s.cases:>6}{share(s.emergency_recall):>10}{s.emergencies_sent_home:>8}"
        f"{share(s.exact):>8}{share(s.calm_answered_emergency):>8}{s.urgent_sent_home:>8}"
    )
    return f"{cells}  {line.note}".rstrip()


def format_report(sections: Sequence[Section]) -> str:
    out = [HEADER]
    for section in sections:
        out.append(section.title)
        out += [format_line(line) for line in section.lines]
    return "\n".join(out)
