"""``smsbot rules check`` for the ``triage`` and ``info`` kinds: each file's schema, then every
example its rules and context cues carry, run through ``assess``, and the replies' SMS budget.

Apart from ``rules.py`` (which loads the rule set the engine reads), because it runs the
engine and the replies over the rules they were built from.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from smsbot.rulefiles import RuleFileError, rule_files
from smsbot.triage.engine import assess
from smsbot.triage.model import RuleSet
from smsbot.triage.replies import budget_problems
from smsbot.triage.rules import parse_dir
from smsbot.triage.schema import Parsed, parse_file


def check_file(path: Path, data: dict[str, Any]) -> list[RuleFileError]:
    """Schema problems of this file, then every example of its rules run through ``assess``."""
    file_problems = parse_file(path, data, Parsed())
    if file_problems:
        return file_problems
    ruleset, problems = _parsed_once(path.parent, _stamp(path.parent))
    if ruleset is None:
        return [p for p in problems if str(p.path) in (str(path), str(path.parent))]
    out = [RuleFileError(path, reason, field=field) for field, reason in budget_problems(ruleset)]
    out = out if "replies" in data else []
    for item in [*ruleset.rules, *ruleset.topics]:
        if item.source != str(path):
            continue
        for text in item.fires:
            if item.id not in assess(text, rules=ruleset).flags:
                reason = f"example should fire but did not: {text!r}"
                out.append(RuleFileError(path, reason, rule_id=item.id, line=item.line))
        for text in item.does_not_fire:
            if item.id in assess(text, rules=ruleset).flags:
                reason = f"example should not fire but did: {text!r}"
                out.append(RuleFileError(path, reason, rule_id=item.id, line=item.line))
    for trigger in ruleset.triggers:
        if trigger.source != str(path):
            continue
        for text, level in trigger.examples:
            got = assess(text, rules=ruleset).level
            if got != level:
                reason = f"example should be {level} but is {got}: {text!r}"
                out.append(RuleFileError(path, reason, rule_id=trigger.id, line=trigger.line))
    return out


@lru_cache(maxsize=4)
def _parsed_once(
    rules_dir: Path, stamp: tuple[tuple[str, int, int], ...]
) -> tuple[RuleSet | None, list[RuleFileError]]:
    """``parse_dir`` once per state of the directory: ``rules check`` validates file by file."""
    return parse_dir(rules_dir)


def _stamp(rules_dir: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in rule_files(rules_dir))
