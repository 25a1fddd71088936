"""``smsbot triage train``: the learned second opinion.

Attached to the ``smsbot triage`` group in ``cli.py`` (which, without a subcommand, still
triages stdin).
"""

from __future__ import annotations

from pathlib import Path

import click

from smsbot.triage.classifier import ARTIFACT
from smsbot.triage.corpus import Batch, CorpusError, load_corpus, training_cases
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
    cases = training_cases(_batches(corpus_dir))
    classifier, validation = train_classifier(cases)
    classifier.save(out)
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


def register(group: click.Group) -> None:
    """Add ``train`` to the ``smsbot triage`` group."""
    group.add_command(train)
