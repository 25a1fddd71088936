"""``assess()``: decide how urgent a parent's text is from the rule set.

Every rule is checked against the whole message (red flags hide after long context) and the
highest level wins; nothing a milder rule says can lower it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from smsbot.triage.classifier import Classifier, shipped_classifier
from smsbot.triage.matcher import Lexicon, Match
from smsbot.triage.model import LANGS, LEVELS, Rule, RuleSet
from smsbot.triage.readings import ages_days, number_before, temperatures_f
from smsbot.triage.rules import load_rules


def severity(level: str) -> int:
    """Position of ``level`` in LEVELS (info=0 … emergency=3), for comparing levels."""
    return LEVELS.index(level)


def highest(levels: list[str]) -> str:
    """The most severe of ``levels`` ("info" when empty)."""
    return max(levels, key=severity, default="info")


@dataclass(frozen=True)
class Decision:
    """How urgent a message is, which rules said so, and in which language to answer.

    ``flags`` are the ids of the rules that fired, most severe first (then by id); when the
    level is "info" they also name the matching FAQ topics, in rule-file order. When the
    learned second opinion raised the level, its flag (``model:urgent:0.87``) comes first.
    The versions say which rule files and which classifier made the decision.
    """

    level: str
    flags: tuple[str, ...]
    lang: str
    temperature_f: float | None = None
    age_days: int | None = None
    rules_version: str | None = None
    model_version: str | None = None  # None: the classifier was not consulted


class Engine:
    """A rule set compiled for matching; built once per RuleSet."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        terms = {tid: term.phrases for tid, term in ruleset.terms.items()}
        phrases: list[tuple[str, str]] = []
        owners = [(f"term:{tid}", t.phrases, t.exclude) for tid, t in ruleset.terms.items()]
        owners += [(f"rule:{r.id}", r.phrases, r.exclude) for r in ruleset.rules]
        for owner, own_phrases, exclude in owners:
            phrases += [(owner, p) for p in own_phrases]
            phrases += [(f"x:{owner}", p) for p in exclude]
            # Reusing a whole term ("@shaking") also inherits its look-alikes ("shaking the bottle").
            for tid in {p[1:] for p in own_phrases if p.startswith("@") and " " not in p}:
                phrases += [(f"x:{owner}", p) for p in ruleset.terms[tid].exclude]
        for topic in ruleset.topics:
            phrases += [(f"topic:{topic.id}", p) for p in topic.phrases]
        self.lexicon = Lexicon(phrases, terms, ruleset.language, ruleset.settings)
        self.rules = {rule.id: rule for rule in ruleset.rules}
        self.term_negatable = {tid: term.negatable for tid, term in ruleset.terms.items()}
        # Rules triggered by numbers are checked on every message; phrase rules only when matched.
        self.number_rules = [r for r in ruleset.rules if r.temperature_f or r.count]
        # Hint words count double: they are everyday words; phrase words back them up in short texts.
        self.lang_weights = {
            lang: {
                **dict.fromkeys(ruleset.lang_words.get(lang, ()), 1),
                **dict.fromkeys(ruleset.language.hints[lang], 2),
            }
            for lang in LANGS
        }

    def detect_lang(self, tokens: list[str]) -> str:
        """Spanish when Spanish words outweigh English ones; English otherwise."""
        es = sum(self.lang_weights["es"].get(t, 0) for t in tokens)
        en = sum(self.lang_weights["en"].get(t, 0) for t in tokens)
        return "es" if es > en else "en"

    def assess(self, text: str, baby_age_days: int | None, lang: str | None) -> Decision:
        lexicon, language = self.lexicon, self.ruleset.language
        tokens = lexicon.tokens(text)
        # Emoji that stand for words ("lips 🔵") are read in the text's language, so the
        # language is first told from the words alone (so are Spanish words spelled by ear).
        reply_lang = lang if lang in LANGS else self.detect_lang(tokens)
        # Spanish spelled by ear ("bomito") is respelled once the text is known to be Spanish.
        if reply_lang == "es" or lexicon.has_emoji_words(text):
            tokens = lexicon.tokens(text, reply_lang)
        matches = lexicon.scan(tokens)
        present: set[str] = set()  # "term:x" / "rule:x" / "topic:x" found and not negated
        term_spans: dict[str, list[Match]] = {}
        for m in matches:
            kind, _, oid = m.owner.partition(":")
            if kind == "term":
                term_spans.setdefault(oid, []).append(m)
                if not (m.negated and self.term_negatable[oid]):
                    present.add(m.owner)
            elif kind == "rule":
                if not (m.negated and self.rules[oid].negatable):
                    present.add(m.owner)
            elif kind == "topic":
                present.add(m.owner)
        readings = temperatures_f(tokens, language)
        ages = ages_days(tokens, language) + ([baby_age_days] if baby_age_days is not None else [])
        age = min(ages) if ages else self.ruleset.settings.assumed_age_days

        candidates = {o[5:]: self.rules[o[5:]] for o in present if o.startswith("rule:")}
        candidates.update((r.id, r) for r in self.number_rules)
        fired = [
            rule
            for rule in candidates.values()
            if self._triggered(rule, present, readings, tokens, term_spans)
            and all(f"term:{t}" in present for t in rule.with_terms)
            and not any(f"term:{t}" in present for t in rule.unless_terms)
            and (rule.age_days is None or age in rule.age_days)
            and not (rule.only_without_reading and readings)
        ]
        level = highest([r.level for r in fired])
        flags = sorted((r.id for r in fired), key=lambda rid: (-severity(self.rules[rid].level), rid))
        if level == "info":
            flags += [t.id for t in self.ruleset.topics if f"topic:{t.id}" in present]
        return Decision(
            level=level,
            flags=tuple(flags),
            lang=reply_lang,
            temperature_f=max(readings) if readings else None,
            age_days=age if ages else None,
            rules_version=self.ruleset.version,
        )

    def _triggered(
        self,
        rule: Rule,
        present: set[str],
        readings: list[float],
        tokens: list[str],
        term_spans: dict[str, list[Match]],
    ) -> bool:
        if f"rule:{rule.id}" in present:
            return True
        if rule.temperature_f and any(r in rule.temperature_f for r in readings):
            return True
        if rule.count:
            for m in term_spans.get(rule.count.term, ()):
                value = number_before(tokens, m.start, self.ruleset.language)
                if value is not None and value in rule.count.range:
                    return True
        return False


@lru_cache(maxsize=16)
def engine_for(ruleset: RuleSet) -> Engine:
    """The compiled engine of a rule set (RuleSet hashes by identity, so reloads recompile)."""
    return Engine(ruleset)


def assess(
    text: str,
    baby_age_days: int | None = None,
    lang: str | None = None,
    *,
    rules: RuleSet | None = None,
    classifier: Classifier | Literal["shipped"] | None = "shipped",
) -> Decision:
    """Triage one parent message. ``lang`` forces the reply language; otherwise it is detected.

    Age comes from the text or ``baby_age_days`` (the younger wins, to stay safe); when
    unknown, the rule set's assumed age (about 2 months) applies. The classifier (the one
    shipped with smsbot, another, or None for the rules alone) may raise the rules' level,
    never lower it.
    """
    decision = engine_for(rules or load_rules()).assess(text, baby_age_days, lang)
    if classifier == "shipped":
        classifier = shipped_classifier()
    if classifier is None or decision.level == LEVELS[-1] or not classifier.knows_age(decision.age_days):
        return decision  # no classifier, nothing left to raise, or a baby older than its corpus's
    opinion = classifier.opinion(text)
    if opinion is None or severity(opinion.level) <= severity(decision.level):
        return replace(decision, model_version=classifier.version)
    flags = (opinion.flag, *decision.flags)
    return replace(decision, level=opinion.level, flags=flags, model_version=classifier.version)
