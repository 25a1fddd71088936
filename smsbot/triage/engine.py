"""``assess()``: decide how urgent a parent's text is from the rule set.

Every rule is checked against the whole message (red flags hide after long context) and the
highest level wins; nothing a milder rule says can lower it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from smsbot.triage.classifier import Classifier, shipped_classifier
from smsbot.triage.context import ContextReader, marks_of
from smsbot.triage.matcher import Lexicon, Match
from smsbot.triage.model import READING, Rule, RuleSet
from smsbot.triage.readings import Reading, ages_days, number_before, temperatures_f
from smsbot.triage.rules import load_rules
from smsbot.vocabulary import LANGS, LEVELS, highest, severity

# A rule's conditions ask only whether the text is about the thing: "with: shaking" holds when
# the jitters were seen by a doctor or long ago, "the baby had one too" needs someone's
# seizure, and "my xanax bottle" names the xanax. An ``unless`` condition, which can only
# lower a level, reads strictly.
WITH_ALLOWS = frozenset({"past", "assessed", "other", "parent", "object"})
UNLESS_ALLOWS = frozenset({"past", "assessed"})
# Marks that set a red flag aside as no sign of this baby's. The classifier reads only the
# words, so when the rules found red flags and set every one aside, by context ("my husband has
# a fever of 39", "what if she turns blue", "her blue onesie") or by an emergency rule's own
# exception ("grunting while pooping", clinical.md 11.9), it may raise to urgent but not to
# emergency: its "emergency" is the words it has seen in emergencies. Not negation: "no paran
# aunque se lo detengo" reads as a denial and is a hold test that failed. Cross-validated on
# 4,645 texts, this gate takes calm texts answered emergency from 1.3% to 1.1% (25 to 21) and
# keeps every emergency; with negation too, it sends that one emergency to urgent.
SET_ASIDE = frozenset({"other", "object", "figurative", "parent", "hypothetical"})


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
    # The text names emergency signs, and context set every one aside (see SET_ASIDE).
    red_flags_set_aside: bool = False


class Engine:
    """A rule set compiled for matching; built once per RuleSet."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.rules_version = ruleset.version  # hashes every rule file: once, not per message
        terms = {tid: term.phrases for tid, term in ruleset.terms.items()}
        # Cue words may use clinical terms ("@object") and triggers may use both.
        terms.update((cid, words.phrases) for cid, words in ruleset.cue_words.items())
        phrases: list[tuple[str, str]] = []
        owners = [(f"term:{tid}", t.phrases, t.exclude) for tid, t in ruleset.terms.items()]
        for owner, own_phrases, exclude in owners:
            phrases += [(owner, p) for p in own_phrases]
            phrases += [(f"x:{owner}", p) for p in exclude]
            # Reusing a whole term ("@shaking") also inherits its look-alikes ("shaking the bottle").
            for tid in {p[1:] for p in own_phrases if p.startswith("@") and " " not in p}:
                phrases += [(f"x:{owner}", p) for p in ruleset.terms[tid].exclude]
        for topic in ruleset.topics:
            phrases += [(f"topic:{topic.id}", p) for p in topic.phrases]
        for trigger in ruleset.triggers:
            phrases += [(f"ctx:{trigger.id}", p) for p in trigger.phrases]
        for cid, words in ruleset.cue_words.items():
            phrases += [(f"cue:{cid}", p) for p in words.phrases]
        self.lexicon = Lexicon(phrases, terms, ruleset.language, ruleset.settings)
        self.context = ContextReader(ruleset.triggers, frozenset(ruleset.language.contrasts))
        self.rules = {rule.id: rule for rule in ruleset.rules}
        self.silencing = frozenset(rule.id for rule in ruleset.rules if rule.second_opinion is False)
        self.capping = frozenset(rule.id for rule in ruleset.rules if isinstance(rule.second_opinion, str))
        self.term_negatable = {tid: term.negatable for tid, term in ruleset.terms.items()}
        # Rules triggered by numbers are checked on every message; finding rules only when found.
        self.number_rules = [r for r in ruleset.rules if r.temperature_f or r.count]
        self.rules_of: dict[str, list[Rule]] = {}
        for rule in ruleset.rules:
            for term in rule.findings:
                self.rules_of.setdefault(f"term:{term}", []).append(rule)
        # What an emergency rule fires on: its findings, and the temperatures it reads.
        emergencies = [r for r in ruleset.rules if r.level == LEVELS[-1]]
        self.red_flag_terms = frozenset(t for r in emergencies for t in r.findings)
        self.red_flag_ranges = tuple(r.temperature_f for r in emergencies if r.temperature_f)
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
        if lexicon.has_emoji_words(text):
            tokens = lexicon.tokens(text, reply_lang)
        elif reply_lang == "es":
            tokens = lexicon.spanish(tokens)
        matches = lexicon.scan(tokens)
        readings = temperatures_f(tokens, language)
        scopes = self.context.scopes(tokens, matches)
        term_spans: dict[str, list[Match]] = {}
        for m in matches:
            kind, _, oid = m.owner.partition(":")
            if kind == "term":
                term_spans.setdefault(oid, []).append(m)
        spans: dict[str, list[tuple[int, int]]] = {}
        if any(s.trigger.only for s in scopes):
            spans = {oid: [(m.start, m.end) for m in ms] for oid, ms in term_spans.items()}
            spans[READING] = [(r.start, r.end) for r in readings]
        # Each finding that is not negated (where its owner can be) keeps its context marks;
        # a rule counts it when every mark is one the rule allows (``also_counts``).
        found: dict[str, list[frozenset[str]]] = {}
        red_flags = 0
        left: set[str] = set()  # red-flag terms (or READING) that context did not set aside
        for m in matches:
            kind, _, oid = m.owner.partition(":")
            if kind == "term":
                negatable = self.term_negatable[oid]
            elif kind == "topic":
                negatable = False
            else:
                continue
            m.marks = marks_of(scopes, m.start, m.end, spans)
            if "negated" in m.marks:
                m.negated, m.marks = True, m.marks - {"negated"}
            if not (m.negated and negatable):
                found.setdefault(m.owner, []).append(m.marks)
            if oid in self.red_flag_terms:
                red_flags += 1
                marks = m.marks | {"negated"} if m.negated and negatable else m.marks
                if not marks & SET_ASIDE:
                    left.add(oid)
        readings = [(r, marks_of(scopes, r.start, r.end, spans)) for r in readings]
        for r, marks in readings:
            if any(r.value_f in limits for limits in self.red_flag_ranges):
                red_flags += 1
                if not marks & SET_ASIDE:
                    left.add(READING)
        now = [r for r, marks in readings if not marks]
        ages = ages_days(tokens, language) + ([baby_age_days] if baby_age_days is not None else [])
        age = min(ages) if ages else self.ruleset.settings.assumed_age_days

        def counts(owner: str, allowed: frozenset[str]) -> bool:
            return any(marks <= allowed for marks in found.get(owner, ()))

        candidates = {r.id: r for o in found for r in self.rules_of.get(o, ())}
        candidates.update((r.id, r) for r in self.number_rules)
        fired = []
        excepted: set[str] = set()  # red flags an emergency rule's own exception set aside
        for rule in candidates.values():
            values = [r for r, marks in readings if marks <= rule.also_counts]
            if not (
                self._triggered(rule, counts, values, tokens, term_spans)
                and all(counts(f"term:{t}", WITH_ALLOWS) for t in rule.with_terms)
                and (rule.age_days is None or age in rule.age_days)
                and not (rule.only_without_reading and now)
            ):
                continue
            if not any(counts(f"term:{t}", UNLESS_ALLOWS) for t in rule.unless_terms):
                fired.append(rule)
            elif rule.level == LEVELS[-1]:
                excepted.update(rule.findings)
        level = highest([r.level for r in fired])
        flags = sorted((r.id for r in fired), key=lambda rid: (-severity(self.rules[rid].level), rid))
        if level == "info":
            # An FAQ answers a question whatever its context ("what if she turns blue?").
            flags += [t.id for t in self.ruleset.topics if f"topic:{t.id}" in found]
        return Decision(
            level=level,
            flags=tuple(flags),
            lang=reply_lang,
            temperature_f=max(r.value_f for r in now) if now else None,
            age_days=age if ages else None,
            rules_version=self.rules_version,
            red_flags_set_aside=red_flags > 0 and left <= excepted,
        )

    def _triggered(
        self,
        rule: Rule,
        counts: Callable[[str, frozenset[str]], bool],
        readings: list[Reading],
        tokens: list[str],
        term_spans: dict[str, list[Match]],
    ) -> bool:
        if any(counts(f"term:{t}", rule.also_counts) for t in rule.findings):
            return True
        if rule.temperature_f and any(r.value_f in rule.temperature_f for r in readings):
            return True
        if rule.count:
            for m in term_spans.get(rule.count.term, ()):
                if not m.marks <= rule.also_counts:
                    continue
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
    engine = engine_for(rules or load_rules())
    decision = engine.assess(text, baby_age_days, lang)
    if classifier == "shipped":
        classifier = shipped_classifier()
    if (
        classifier is None
        or decision.level == LEVELS[-1]
        or engine.silencing.intersection(decision.flags)
        or not classifier.covers(text, decision.age_days)
    ):
        # No classifier, nothing left to raise, a text a rule says is no symptom report, or a
        # text unlike its corpus's.
        return decision
    # Emergency signs the context set aside, or a sign the text is benign: the model may say
    # urgent, not emergency (every capping rule caps at urgent, the level under emergency).
    capped = decision.red_flags_set_aside or engine.capping.intersection(decision.flags)
    opinion = classifier.opinion(text, below=LEVELS[-1] if capped else None)
    if opinion is None or severity(opinion.level) <= severity(decision.level):
        return replace(decision, model_version=classifier.version)
    flags = (opinion.flag, *decision.flags)
    return replace(decision, level=opinion.level, flags=flags, model_version=classifier.version)
