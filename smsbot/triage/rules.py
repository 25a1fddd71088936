"""Load the triage rule set from ``rules/*.yaml`` (the ``triage`` and ``info`` kinds)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from smsbot import config
from smsbot.rulefiles import RuleFileError, read_rule_file, rule_files
from smsbot.triage.model import RuleSet
from smsbot.triage.schema import Parsed, cross_check, parse_file
from smsbot.vocabulary import LANGS

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


@lru_cache(maxsize=8)
def _load_cached(rules_dir: Path) -> RuleSet:
    ruleset, problems = parse_dir(rules_dir)
    if ruleset is None:
        raise problems[0]
    return ruleset


@lru_cache(maxsize=1)
def _shipped_rules_dir() -> Path:
    """Where the shipped rules are: found once, since every message asks (a fifth of its time)."""
    return config.default_rules_dir().resolve()


def load_rules(rules_dir: Path | None = None) -> RuleSet:
    """Load the rule set of ``rules_dir`` (default: the shipped rules), cached per directory."""
    return _load_cached(Path(rules_dir).resolve() if rules_dir else _shipped_rules_dir())
