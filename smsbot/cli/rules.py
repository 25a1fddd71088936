"""``smsbot rules check``: every rule file validated by its kind, and every example run.

The kinds are listed here, each with its checker, rather than registered as a side effect of
importing the modules that read them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from smsbot.checkins import programmes
from smsbot.cli.settings import rules_dir_option
from smsbot.clinics import texts as clinic_texts
from smsbot.config import default_rules_dir
from smsbot.conversation import keywords
from smsbot.conversation.catalogue import catalogue
from smsbot.messaging import whatsapp
from smsbot.rulefiles import RuleFileError, read_rule_file, rule_files
from smsbot.triage import checks as triage_checks
from smsbot.triage.model import RuleSet
from smsbot.triage.rules import parse_dir
from smsbot.vocabulary import MAX_SEGMENTS

# Every kind of rule file, and what checks one: each problem names file, line, rule and field.
KINDS: dict[str, Callable[[Path, dict[str, Any]], list[RuleFileError]]] = {
    "triage": triage_checks.check_file,
    "info": triage_checks.check_file,
    "keywords": keywords.check_file,
    "checkins": programmes.check_file,
    "clinic": clinic_texts.check_file,
    "whatsapp": whatsapp.check_file,
}


def check_rules_dir(rules_dir: Path) -> tuple[list[RuleFileError], int]:
    """Validate every rule file; returns (every problem found, files checked)."""
    problems: list[RuleFileError] = []
    files = rule_files(rules_dir)
    if not files:
        return [RuleFileError(rules_dir, "no rule files (*.yaml)")], 0
    for path in files:
        try:
            data = read_rule_file(path)
        except RuleFileError as exc:
            problems.append(exc)
            continue
        check = KINDS.get(data["kind"])
        if check is None:
            known = ", ".join(sorted(KINDS))
            problems.append(
                RuleFileError(path, f"unknown kind {data['kind']!r} (known: {known})", field="kind")
            )
            continue
        problems.extend(check(path, data))
    return problems, len(files)


def _report_texts(directory: Path, ruleset: RuleSet) -> bool:
    """Print every text's SMS segments at its longest; False when one breaks the budget or the alphabet."""
    texts = catalogue(directory, ruleset)
    click.echo(f"Texts smsbot sends (longest rendering; budget {MAX_SEGMENTS} SMS segments, GSM-7):")
    for text in texts:
        mark = "FAIL" if text.problems else "ok"
        click.echo(
            f"  {mark:4} {text.segments} seg {text.chars:4} chars  {text.name} ({text.variants} variants)"
        )
        for problem in text.problems:
            click.echo(f"       {problem}")
    failed = [text for text in texts if text.problems]
    if failed:
        click.echo(f"{len(failed)} of {len(texts)} texts break the budget, GSM-7 or the Spanish spelling")
    return not failed


@click.group()
def rules() -> None:
    """Rule files in rules/: validate them and run their examples."""


@rules.command("check")
@rules_dir_option
def rules_check(rules_dir: Path | None) -> None:
    """Validate every rule file and run every rule's examples; exit 1 on any problem."""
    directory = rules_dir or default_rules_dir()
    problems, files = check_rules_dir(directory)
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    ruleset, _ = parse_dir(directory)
    items = [*ruleset.rules, *ruleset.topics] if ruleset else []
    examples = sum(len(item.fires) + len(item.does_not_fire) for item in items)
    cues = ruleset.triggers if ruleset else ()
    examples += sum(len(cue.examples) for cue in cues)
    click.echo(
        f"OK: {files} rule files, {len(items)} rules and topics, {len(cues)} context cues, "
        f"{examples} examples pass"
    )
    if ruleset:
        unsigned = [f.name for f in ruleset.files if f.reviewed_by is None]
        click.echo(f"rule set {ruleset.version}; not yet signed off by a clinician: {len(unsigned)} files")
        if not _report_texts(directory, ruleset):
            sys.exit(1)
