"""``smsbot triage``: triage parent messages from stdin, as the pipeline would answer them;
``triage train`` and ``triage eval``: the learned second opinion and the scores on the corpus."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from smsbot.cli.settings import rules_dir_option
from smsbot.config import default_rules_dir
from smsbot.conversation import news
from smsbot.conversation.keywords import Keywords, load_keywords
from smsbot.messaging.segments import count_segments
from smsbot.rulefiles import RuleFileError
from smsbot.triage import Decision, RuleSet, assess, load_rules
from smsbot.triage.classifier import ARTIFACT, ClassifierFileError, read_classifier
from smsbot.triage.corpus import Batch, CorpusError, corpus_hash, load_corpus, training_cases
from smsbot.triage.replies import render_reply
from smsbot.vocabulary import DIALABLE, LEVELS


def _dialable(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(DIALABLE, value):
        raise click.BadParameter(f"{value!r} is not a dialable number")
    return value


def _load(rules_dir: Path | None) -> RuleSet:
    try:
        return load_rules(rules_dir)
    except RuleFileError as exc:
        raise click.ClickException(str(exc)) from None


def _load_keywords(rules_dir: Path | None) -> Keywords:
    try:
        return load_keywords((rules_dir or default_rules_dir()).resolve())
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _reply(decision: Decision, ruleset: RuleSet, keywords: Keywords, emergency_number: str) -> str:
    """What a parent would be sent: the triage reply, or the reply to sensitive news."""
    name = news.reply_name(decision.level, news.news_in(decision))
    if name is not None:
        return keywords.reply(name, decision.lang, emergency_number=emergency_number)
    return render_reply(decision, emergency_number=emergency_number, rules=ruleset)


def _jsonl_line(line: str, ruleset: RuleSet, keywords: Keywords, emergency_number: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"invalid JSON: {exc.msg}"}
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return {"error": "expected an object with a string 'text'"}
    age = item.get("baby_age_days")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age < 0):
        return {"error": "'baby_age_days' must be a non-negative whole number"}
    decision = assess(item["text"], age, rules=ruleset)
    reply = _reply(decision, ruleset, keywords, emergency_number)
    return {
        "level": decision.level,
        "flags": list(decision.flags),
        "lang": decision.lang,
        "reply": reply,
        "segments": count_segments(reply),
    }


@click.group(invoke_without_command=True)
@click.option(
    "--jsonl", is_flag=True, help='Read {"text": ..., "baby_age_days": ...} lines; write JSON lines.'
)
@click.option(
    "--emergency-number",
    envvar="SMSBOT_EMERGENCY_NUMBER",
    default="911",
    show_default=True,
    callback=_dialable,
    help="Number replies tell parents to call [env SMSBOT_EMERGENCY_NUMBER].",
)
@rules_dir_option
@click.pass_context
def triage(ctx: click.Context, jsonl: bool, emergency_number: str, rules_dir: Path | None) -> None:
    """Triage parent messages from stdin, one per line, and print the level and the reply.

    With --jsonl every non-blank input line gets exactly one output line, in order:
    {"level", "flags", "lang", "reply", "segments"}, or {"error"} for a bad line.
    The subcommands train the learned second opinion and score triage on the corpus.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = rules_dir  # the rules `eval` scores
        return
    ruleset, keywords = _load(rules_dir), _load_keywords(rules_dir)
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        if jsonl:
            out = _jsonl_line(line, ruleset, keywords, emergency_number)
            click.echo(json.dumps(out, ensure_ascii=False))
        else:
            decision = assess(line, rules=ruleset)
            reply = _reply(decision, ruleset, keywords, emergency_number)
            click.echo(f"{decision.level.upper()}: {reply}")

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


@triage.command("train")
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


@triage.command("eval")
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
