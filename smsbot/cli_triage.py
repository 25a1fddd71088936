"""``smsbot triage train`` and ``smsbot triage eval``: the learned second opinion and its scores.

Attached to the ``smsbot triage`` group in ``cli.py`` (which, without a subcommand, still
triages stdin).
"""

from __future__ import annotations

from pathlib import Path

import click

from smsbot.rulefiles import RuleFileError
from smsbot.triage import load_rules
from smsbot.triage.classifier import ARTIFACT, ClassifierFileError, read_classifier
from smsbot.triage.corpus import Batch, CorpusError, corpus_hash, load_corpus, training_cases
from smsbot.triage.model import LEVELS

corpus_option = click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Directory of labelled texts [default: corpus/ of the smsbot source checkout].",
)


def _needs_training_extra() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise click.ClickException("training needs scikit-learn: pip install 'smsbot[train]'") from None


def _batches(corpus_dir: Path | None) -> list[Batch]:
    try:
        return load_corpus(corpus_dir)
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("train")
@corpus_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=ARTIFACT,
    show_default="the artifact shipped in the package",
    help="Where to write the classifier.",
)
def train(corpus_dir: Path | None, out: Path) -> None:
    """Train the learned second opinion on the corpus (all but frozen/) and write its artifact.

    Deterministic: the same corpus gives the same file. Thresholds are calibrated by
    cross-validation, so this takes a few seconds per thousand texts.
    """
    from smsbot.triage.scores import score
    from smsbot.triage.training import train as train_classifier

    _needs_training_extra()
    classifier, validation = train_classifier(_batches(corpus_dir))
    classifier.save(out)
    cases = validation.cases
    click.echo(f"trained on {len(cases)} texts: {classifier.training['levels']}")
    for level, facts in classifier.training["calibration"].items():
        click.echo(
            f"  raises to {level} above {classifier.thresholds[level]:.4f}: out of fold, "
            f"{facts['calm_raised']:.1%} of calm texts (cap {facts['cap']:.0%}), "
            f"{facts['recall']:.1%} of {'emergency' if level == 'emergency' else 'urgent or emergency'} texts"
        )
    labels = [case.level for case in cases]
    alone = score(labels, [LEVELS[i] for i in validation.probabilities.argmax(axis=1)])
    click.echo(
        f"  model alone, out of fold: exact {alone.exact:.3f}, emergency recall "
        f"{alone.emergency_recall:.3f}, emergencies sent home {alone.emergencies_sent_home}"
    )
    click.echo(f"wrote {out} ({out.stat().st_size:,} bytes), version {classifier.version}")


@click.command("eval")
@corpus_option
@click.option(
    "--classifier",
    "classifier_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=ARTIFACT,
    show_default="the shipped one",
    help="Classifier artifact to score.",
)
@click.option("--no-cv", is_flag=True, help="Skip cross-validation (it retrains the classifier per fold).")
@click.pass_context
def evaluate(ctx: click.Context, corpus_dir: Path | None, classifier_path: Path, no_cv: bool) -> None:
    """Score triage on the labelled corpus: per file and in total, the frozen slice, cross-validated.

    Blind batches show their recorded first-run scores beside the current ones. Frozen
    texts are never printed, only their scores.
    """
    from smsbot.triage.evaluation import corpus_sections, cross_validated_section, format_report

    try:
        ruleset = load_rules(ctx.obj)
        classifier = read_classifier(classifier_path)
    except (RuleFileError, ClassifierFileError) as exc:
        raise click.ClickException(str(exc)) from None
    batches = _batches(corpus_dir)
    fresh = classifier.training.get("corpus") == corpus_hash(training_cases(batches))
    click.echo(
        f"rules {ruleset.version}, classifier {classifier.version} "
        f"({'trained on this corpus' if fresh else 'NOT trained on this corpus: run smsbot triage train'})"
    )
    sections = corpus_sections(batches, ruleset, classifier)
    if not no_cv:
        _needs_training_extra()
        sections.append(cross_validated_section(batches, ruleset))
    click.echo(format_report(sections))


def register(group: click.Group) -> None:
    """Add ``train`` and ``eval`` to the ``smsbot triage`` group."""
    group.add_command(train)
    group.add_command(evaluate)
