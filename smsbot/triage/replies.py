"""Reply text for a triage decision, in the parent's language, within the SMS budget.

The words come from the rule files (clinicians own them); this module only fills the
placeholders and keeps the result within MAX_SEGMENTS. When the red-flag reason or the
baby's name would push a reply over budget they are dropped, never the safety lines.
"""

from __future__ import annotations

from smsbot.messaging.segments import count_segments
from smsbot.triage.engine import Decision
from smsbot.triage.model import RuleSet
from smsbot.triage.rules import load_rules
from smsbot.vocabulary import LONGEST_NUMBER, MAX_SEGMENTS


def reason_line(decision: Decision, ruleset: RuleSet) -> str:
    """The reason line of the most severe fired rule that has one."""
    by_id = {rule.id: rule for rule in ruleset.rules}
    for flag in decision.flags:
        rule = by_id.get(flag)
        if rule and rule.level == decision.level and rule.reason:
            return rule.reason[decision.lang]
    return ""


def _notes(decision: Decision, ruleset: RuleSet) -> str:
    """Extra lines of fired rules that carry one ("also let the baby's parent know")."""
    fired = set(decision.flags)
    return " ".join(r.note[decision.lang] for r in ruleset.rules if r.note and r.id in fired)


def _answer(decision: Decision, ruleset: RuleSet) -> str:
    """For info replies: the first matching FAQ answer in rule-file order, else the menu."""
    for topic in ruleset.topics:
        if topic.id in decision.flags:
            return topic.answer[decision.lang]
    return ruleset.menu[decision.lang]


def _fill(template: str, **values: str) -> str:
    return " ".join(template.format(**values).split())


def render_reply(
    decision: Decision,
    *,
    emergency_number: str,
    rules: RuleSet | None = None,
    baby_name: str | None = None,
) -> str:
    """The SMS to send back for ``decision``: at most MAX_SEGMENTS segments when the rules allow."""
    ruleset = rules or load_rules()
    template = ruleset.replies[decision.level][decision.lang]
    answer = _answer(decision, ruleset) if decision.level == "info" else ""
    answer = answer.format(emergency_number=emergency_number)
    reason = reason_line(decision, ruleset)
    notes = _notes(decision, ruleset)
    baby = baby_name or ruleset.baby_fallback[decision.lang]
    # Most useful first: the red-flag reason, then notes, then the baby's name are dropped in turn.
    attempts = [(reason, notes, baby), (reason, "", baby), ("", notes, baby), ("", "", baby)]
    attempts.append(("", "", ruleset.baby_fallback[decision.lang]))
    for why, note, name in attempts:
        text = _fill(template, emergency_number=emergency_number, reason=why, baby=name, answer=answer)
        text = f"{text} {note}" if note else text
        if count_segments(text) <= MAX_SEGMENTS:
            return text
    return text


def budget_problems(ruleset: RuleSet) -> list[tuple[str, str]]:
    """Replies that cannot fit MAX_SEGMENTS even without the optional reason, as (field, reason)
    (for ``rules check``)."""
    problems = []
    for level, texts in ruleset.replies.items():
        for lang, template in texts.items():
            answers = [ruleset.menu[lang], *(t.answer[lang] for t in ruleset.topics)]
            for answer in answers if level == "info" else [""]:
                answer = answer.format(emergency_number=LONGEST_NUMBER)
                baby = ruleset.baby_fallback[lang]
                text = _fill(template, emergency_number=LONGEST_NUMBER, reason="", baby=baby, answer=answer)
                if count_segments(text) > MAX_SEGMENTS:
                    reason = f"{count_segments(text)} SMS segments, more than {MAX_SEGMENTS}"
                    if answer:
                        reason += f" with answer {answer[:30]!r}..."
                    problems.append((f"replies.{level}.{lang}", reason))
    return problems
