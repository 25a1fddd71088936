"""Load the triage rule set from ``rules/*.yaml`` and check its files for ``smsbot rules check``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from smsbot import config
from smsbot.rulefiles import RuleFileError, read_rule_file, register, rule_files
from smsbot.triage.model import LANGS, RuleSet
from smsbot.triage.schema import Parsed, cross_check, parse_file

TRIAGE_KINDS = ("triage", "info")


def parse_dir(rules_dir: Path) -> tuple[RuleSet | None, list[RuleFileError]]:
    """Parse every triage/info file of a directory; other kinds belong to other modules."""
    parsed = Parsed()
    problems: list[RuleFileError] = []
    for path in rule_files(rules_dir):
        try:
            data = read_rule_file(path)
        except RuleFileError as exc:
            problems.append(exc)
            continue
        if data["kind"] in TRIAGE_KINDS:
            problems += parse_file(path, data, parsed)
    problems += cross_check(parsed, rules_dir)
    if problems:
        return None, problems
    s = parsed.sections
    en, es = (parsed.words[lang] for lang in LANGS)
    lang_words = {"en": frozenset(en - es), "es": frozenset(es - en)}
    ruleset = RuleSet(
        rules=tuple(parsed.rules),
        terms=parsed.terms,
        topics=tuple(parsed.topics),
        language=s["language"],
        settings=s["settings"],
        replies=s["replies"],
        menu=s["menu"],
        baby_fallback=s["baby_fallback"],
        triggers=tuple(parsed.triggers),
        cue_words=parsed.cue_words,
        lang_words=lang_words,
        files=tuple(parsed.files),
    )
    return ruleset, []


@lru_cache(maxsize=4)
def _parsed_once(
    rules_dir: Path, stamp: tuple[tuple[str, int, int], ...]
) -> tuple[RuleSet | None, list[RuleFileError]]:
    """``parse_dir`` once per state of the directory: ``rules check`` validates file by file."""
    return parse_dir(rules_dir)


def _stamp(rules_dir: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in rule_files(rules_dir))


@lru_cache(maxsize=8)
def _load_cached(rules_dir: Path) -> RuleSet:
    ruleset, problems = parse_dir(rules_dir)
    if ruleset is None:
        raise problems[0]
    return ruleset


def load_rules(rules_dir: Path | None = None) -> RuleSet:
    """Load the rule set of ``rules_dir`` (default: the shipped rules), cached per directory."""
    return _load_cached(Path(rules_dir or config.default_rules_dir()).resolve())


def _validate_triage_file(path: Path, data: dict[str, Any]) -> list[str]:
    """Schema problems of this file, then every example of its rules run through ``assess``."""
    from smsbot.triage.engine import assess

    file_problems = parse_file(path, data, Parsed())
    if file_problems:
        return [str(p) for p in file_problems]
    from smsbot.replies import budget_problems

    ruleset, problems = _parsed_once(path.parent, _stamp(path.parent))
    if ruleset is None:
        mine = [p for p in problems if str(p.path) in (str(path), str(path.parent))]
        return [str(p) for p in mine]
    out = [f"{path}: {p}" for p in budget_problems(ruleset)] if "replies" in data else []
    for item in [*ruleset.rules, *ruleset.topics]:
        if item.source != str(path):
            continue
        where = f"{path}:{item.line}" if item.line else str(path)
        for text in item.fires:
            if item.id not in assess(text, rules=ruleset).flags:
                out.append(f"{where}: {item.id}: example should fire but did not: {text!r}")
        for text in item.does_not_fire:
            if item.id in assess(text, rules=ruleset).flags:
                out.append(f"{where}: {item.id}: example should not fire but did: {text!r}")
    for trigger in ruleset.triggers:
        if trigger.source != str(path):
            continue
        where = f"{path}:{trigger.line}" if trigger.line else str(path)
        for text, level in trigger.examples:
            got = assess(text, rules=ruleset).level
            if got != level:
                out.append(f"{where}: {trigger.id}: example should be {level} but is {got}: {text!r}")
    return out


for _kind in TRIAGE_KINDS:
    register(_kind)(_validate_triage_file)
