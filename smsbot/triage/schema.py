"""The rule-file schema: parse ``kind: triage`` / ``kind: info`` YAML into typed objects.

The code defines what a rule may say; the YAML says it. Every problem is a RuleFileError
naming the file, the rule id, the field and the line, because the people editing these
files are clinicians reviewing wording, not Python programmers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Any

import yaml

from smsbot.rulefiles import RuleFileError
from smsbot.triage.matcher import normalise
from smsbot.triage.model import (
    DIRECTIONS,
    LANGS,
    LEVELS,
    MARKS,
    REACHES,
    Count,
    Language,
    Range,
    Rule,
    Settings,
    Term,
    Topic,
    Trigger,
)

PLACEHOLDERS = {"emergency_number", "reason", "baby", "answer"}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PHRASE_TOKEN = re.compile(r"^(\.\.\.|@[a-z0-9_-]+|[a-z0-9]+\*?)$")


class _Reader:
    """Collects schema problems for one file so ``rules check`` can report all of them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[RuleFileError] = []
        self.lines = _item_lines(path)
        self.words: dict[str, set[str]] = {lang: set() for lang in LANGS}

    def fail(self, reason: str, *, rule_id: str | None = None, fld: str | None = None, line=None) -> None:
        self.problems.append(RuleFileError(self.path, reason, rule_id=rule_id, field=fld, line=line))

    def strings(self, value: Any, where: str, rule_id: str | None, line: int | None) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail("must be a list of non-empty strings", rule_id=rule_id, fld=where, line=line)
            return ()
        return tuple(value)

    def phrases(self, value: Any, where: str, rule_id: str | None, line: int | None) -> tuple[str, ...]:
        """``{en: [...], es: [...]}`` or a plain list; phrases in both languages match any text."""
        if value is None:
            return ()
        if isinstance(value, list):
            groups = {"any": value}
        elif isinstance(value, dict) and set(value) <= set(LANGS):
            groups = value
        else:
            self.fail("must be a list or a mapping with keys en/es", rule_id=rule_id, fld=where, line=line)
            return ()
        out: list[str] = []
        for lang, items in groups.items():
            for phrase in self.strings(items, f"{where}.{lang}", rule_id, line):
                problem = phrase_problem(phrase)
                if problem:
                    self.fail(f"{phrase!r}: {problem}", rule_id=rule_id, fld=f"{where}.{lang}", line=line)
                else:
                    out.append(phrase)
                    if lang in self.words:
                        self.words[lang].update(t for t in normalise(phrase).split() if t.isalpha())
        return tuple(out)

    def per_lang(self, value: Any, where: str, rule_id: str | None, line: int | None) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict) or set(value) != set(LANGS):
            self.fail("must give text for en and es", rule_id=rule_id, fld=where, line=line)
            return {}
        if not all(isinstance(v, str) and v.strip() for v in value.values()):
            self.fail("texts must be non-empty strings", rule_id=rule_id, fld=where, line=line)
            return {}
        return {k: " ".join(v.split()) for k, v in value.items()}

    def range(self, value: Any, where: str, rule_id: str, line: int | None) -> Range | None:
        if value is None:
            return None
        ok = isinstance(value, dict) and value and set(value) <= {"at_least", "below"}
        if not ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
            self.fail("must map at_least and/or below to numbers", rule_id=rule_id, fld=where, line=line)
            return None
        return Range(value.get("at_least"), value.get("below"))


def phrase_problem(phrase: str) -> str | None:
    """Why a phrase cannot be matched (None when fine); the matcher reads phrases token by token."""
    tokens = normalise(phrase).split()
    if not tokens:
        return "has no words"
    for token in tokens:
        if not _PHRASE_TOKEN.match(token):
            return f"token {token!r} is not a word, 'stem*', '...' or '@term'"
        if token.endswith("*") and len(token) < 4:
            return f"stem {token!r} is too short (3 letters at least) to be safe"
    if tokens[0] == "..." or tokens[-1] == "...":
        return "cannot start or end with '...'"
    return None


def _item_lines(path: Path) -> dict[tuple[str, int], int]:
    """Line of each item in the top-level ``rules``/``topics`` lists, for error messages."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return {}
    lines: dict[tuple[str, int], int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, node in root.value:
            if isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    lines[(key.value, i)] = item.start_mark.line + 1
    return lines


_RULE_KEYS = {
    "id",
    "level",
    "phrases",
    "negatable",
    "exclude",
    "with",
    "unless",
    "temperature_f",
    "count",
    "age_days",
    "only_without_reading",
    "also_counts",
    "reason",
    "note",
    "examples",
}


def _parse_rule(r: _Reader, raw: Any, index: int) -> Rule | None:
    line = r.lines.get(("rules", index))
    if not isinstance(raw, dict):
        r.fail("each rule must be a mapping", line=line)
        return None
    rid = raw.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        r.fail("id must be lowercase letters, digits and dashes", rule_id=str(rid), fld="id", line=line)
        return None
    for key in set(raw) - _RULE_KEYS:
        r.fail(f"unknown field (allowed: {', '.join(sorted(_RULE_KEYS))})", rule_id=rid, fld=key, line=line)
    level = raw.get("level")
    if level not in LEVELS:
        r.fail(f"must be one of {', '.join(LEVELS)}", rule_id=rid, fld="level", line=line)
    negatable = raw.get("negatable", True)
    if not isinstance(negatable, bool):
        r.fail("must be true or false", rule_id=rid, fld="negatable", line=line)
    only_without = raw.get("only_without_reading", False)
    if not isinstance(only_without, bool):
        r.fail("must be true or false", rule_id=rid, fld="only_without_reading", line=line)
    count = None
    if raw.get("count") is not None:
        c = raw["count"]
        if not isinstance(c, dict) or not isinstance(c.get("term"), str):
            r.fail("needs a 'term' and at_least/below", rule_id=rid, fld="count", line=line)
        else:
            rng = r.range({k: v for k, v in c.items() if k != "term"}, "count", rid, line)
            count = Count(c["term"], rng) if rng else None
    examples = raw.get("examples") or {}
    if not isinstance(examples, dict) or set(examples) - {"fires", "does_not_fire"}:
        r.fail("must be a mapping with fires and/or does_not_fire", rule_id=rid, fld="examples", line=line)
        examples = {}
    rule = Rule(
        id=rid,
        level=level if level in LEVELS else "info",
        phrases=r.phrases(raw.get("phrases"), "phrases", rid, line),
        negatable=negatable is True,
        exclude=r.phrases(raw.get("exclude"), "exclude", rid, line),
        with_terms=r.strings(raw.get("with"), "with", rid, line),
        unless_terms=r.strings(raw.get("unless"), "unless", rid, line),
        temperature_f=r.range(raw.get("temperature_f"), "temperature_f", rid, line),
        count=count,
        age_days=r.range(raw.get("age_days"), "age_days", rid, line),
        only_without_reading=only_without is True,
        also_counts=frozenset(r.strings(raw.get("also_counts", ["past"]) or None, "also_counts", rid, line)),
        reason=r.per_lang(raw.get("reason"), "reason", rid, line),
        note=r.per_lang(raw.get("note"), "note", rid, line),
        fires=r.strings(examples.get("fires"), "examples.fires", rid, line),
        does_not_fire=r.strings(examples.get("does_not_fire"), "examples.does_not_fire", rid, line),
        source=str(r.path),
        line=line,
    )
    if not (rule.phrases or rule.temperature_f or rule.count):
        r.fail("needs phrases, temperature_f or count to trigger it", rule_id=rid, line=line)
    if not rule.fires:
        r.fail("needs at least one example that fires it", rule_id=rid, fld="examples.fires", line=line)
    if not rule.also_counts <= set(MARKS):
        r.fail(f"marks must be among {', '.join(MARKS)}", rule_id=rid, fld="also_counts", line=line)
    return rule


def _parse_terms(r: _Reader, raw: Any) -> dict[str, Term]:
    if not isinstance(raw, dict):
        r.fail("must be a mapping of term id to phrases", fld="terms")
        return {}
    terms: dict[str, Term] = {}
    for tid, body in raw.items():
        if not isinstance(tid, str) or not _ID.match(tid.replace("_", "-")):
            r.fail("term ids must be lowercase words", rule_id=str(tid), fld="terms")
            continue
        if isinstance(body, dict) and "phrases" in body:
            negatable = body.get("negatable", True)
            if not isinstance(negatable, bool):
                r.fail("must be true or false", rule_id=tid, fld="negatable")
            terms[tid] = Term(
                tid,
                r.phrases(body["phrases"], "phrases", tid, None),
                negatable is not False,
                r.phrases(body.get("exclude"), "exclude", tid, None),
            )
        else:
            terms[tid] = Term(tid, r.phrases(body, "phrases", tid, None))
    return terms


def _parse_language(r: _Reader, raw: Any) -> Language | None:
    if not isinstance(raw, dict):
        r.fail("must be a mapping", fld="language")
        return None
    words: dict[str, Any] = {
        name: frozenset(r.strings(raw.get(name), f"language.{name}", None, None))
        for name in (
            "negation_cues",
            "pseudo_negations",
            "scope_breaks",
            "contrasts",
            "continuers",
            "celsius_units",
            "fahrenheit_units",
            "degree_units",
            "temperature_context",
            "non_temperature_units",
            "not_age_cues",
            "decimal_words",
            "zero_words",
        )
    }
    hints = raw.get("hints") or {}
    numbers = raw.get("numbers") or {}
    ages = raw.get("age_units") or {}
    if not isinstance(hints, dict) or set(hints) != set(LANGS):
        r.fail("must list words for en and es", fld="language.hints")
        hints = {}
    for name, table in (("numbers", numbers), ("age_units", ages)):
        if not isinstance(table, dict) or not all(isinstance(v, int) for v in table.values()):
            r.fail("must map words to whole numbers", fld=f"language.{name}")
    words["pseudo_negations"] = tuple(sorted(words["pseudo_negations"]))
    return Language(
        emoji=_parse_emoji(r, raw.get("emoji")),
        shorthand=_parse_word_table(r, raw.get("shorthand"), "shorthand"),
        digit_words=_parse_word_table(r, raw.get("digit_words"), "digit_words", keys_are_digits=True),
        phonetic_swaps=_parse_swaps(r, raw.get("phonetic_swaps")),
        hints={lang: r.strings(hints.get(lang), f"language.hints.{lang}", None, None) for lang in LANGS},
        numbers=dict(numbers) if isinstance(numbers, dict) else {},
        age_units=dict(ages) if isinstance(ages, dict) else {},
        **words,
    )


_EMOJI_WORDS = re.compile(r"^[a-z]+(?: [a-z]+)*$")


def _parse_word_table(
    r: _Reader, raw: Any, name: str, *, keys_are_digits: bool = False
) -> dict[str, tuple[str, ...]]:
    """``{bby: baby, idk: i dont know}`` or ``{"2": [to, too]}``: a token and the word(s) it is read as."""
    if raw is None:
        return {}
    where = f"language.{name}"
    if not isinstance(raw, dict):
        r.fail("must map a token to a word or a list of words", fld=where)
        return {}
    key_ok = str.isdigit if keys_are_digits else str.isalnum
    table: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        key = str(key)
        values = value if isinstance(value, list) else [value]
        if key != normalise(key) or not key_ok(key):
            kind = "one lower-case token of digits" if keys_are_digits else "one lower-case token"
            r.fail(f"{key!r}: keys must be {kind}", fld=where)
            continue
        if not values or not all(isinstance(v, str) and _EMOJI_WORDS.match(v) for v in values):
            r.fail(f"{key!r}: must be plain lower-case words", fld=f"{where}.{key}")
            continue
        # shorthand: one reading, maybe of several words; digit_words: alternative single words
        table[key] = tuple(values) if keys_are_digits else tuple(" ".join(values).split())
    return table


def _parse_swaps(r: _Reader, raw: Any) -> tuple[tuple[str, str], ...]:
    """``[[b, v], ["", h]]``: one letter group swapped for another; an empty first one adds a prefix."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(x, str) and (x == "" or (x.isalpha() and x == normalise(x))) for x in p)
        and p[0] != p[1]
        for p in raw
    ):
        where = "language.phonetic_swaps"
        r.fail('must be a list of [letters, letters] pairs, e.g. [b, v] or ["", h]', fld=where)
        return ()
    return tuple((a, b) for a, b in raw)


def _parse_emoji(r: _Reader, raw: Any) -> dict[str, dict[str, str]]:
    """``emoji: {"🔵": {en: blue, es: azul}, "🫨": shaking}``: the word(s) each emoji is read as."""
    if raw is None:
        return {}
    where = "language.emoji"
    if not isinstance(raw, dict):
        r.fail("must map each emoji to a word or to {en: word, es: word}", fld=where)
        return {}
    table: dict[str, dict[str, str]] = {}
    for char, value in raw.items():
        if not isinstance(char, str) or not char.strip() or char.isascii() or any(c.isalnum() for c in char):
            r.fail(f"{char!r}: keys must be emoji (no letters, digits or plain ASCII)", fld=where)
            continue
        words = dict.fromkeys(LANGS, value) if isinstance(value, str) else value
        if not isinstance(words, dict) or set(words) != set(LANGS):
            r.fail(f"{char!r}: must be a word or give words for en and es", fld=f"{where}.{char}")
            continue
        if not all(isinstance(w, str) and _EMOJI_WORDS.match(normalise(w)) for w in words.values()):
            r.fail(f"{char!r}: words must be plain lower-case words", fld=f"{where}.{char}")
            continue
        table[char] = {lang: normalise(w) for lang, w in words.items()}
    return table


def _parse_settings(r: _Reader, raw: Any) -> Settings | None:
    defaults = {
        "assumed_age_days": 60,
        "fuzzy_min_length": 6,
        "fuzzy_min_ratio": 88.0,
        "negation_window": 4,
        "gap_max": 4,
    }
    if not isinstance(raw, dict):
        r.fail("must be a mapping", fld="settings")
        return None
    values: dict[str, Any] = {}
    for key, default in defaults.items():
        value = raw.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            r.fail("must be a non-negative number", fld=f"settings.{key}")
            value = default
        values[key] = value
    values["fuzzy_ignore"] = r.strings(raw.get("fuzzy_ignore"), "settings.fuzzy_ignore", None, None)
    for key in set(raw) - set(values):
        r.fail("unknown setting", fld=f"settings.{key}")
    if values["fuzzy_min_length"] < 5:
        r.fail("fuzzy matching short words is unsafe; use 5 or more", fld="settings.fuzzy_min_length")
    return Settings(
        **{k: (int(v) if k != "fuzzy_min_ratio" and isinstance(v, float) else v) for k, v in values.items()}
    )


def _parse_replies(r: _Reader, raw: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict) or set(raw) != set(LEVELS):
        r.fail(f"must give a reply for each level: {', '.join(LEVELS)}", fld="replies")
        return {}
    replies = {level: r.per_lang(raw[level], f"replies.{level}", None, None) for level in LEVELS}
    for level, texts in replies.items():
        for lang, text in texts.items():
            try:
                names = {name for _, name, _, _ in Formatter().parse(text) if name is not None}
            except ValueError as exc:
                r.fail(f"bad placeholder: {exc}", fld=f"replies.{level}.{lang}")
                continue
            if names - PLACEHOLDERS:
                r.fail(f"unknown placeholders {sorted(names - PLACEHOLDERS)}", fld=f"replies.{level}.{lang}")
            if "emergency_number" not in names:
                r.fail("must include {emergency_number}", fld=f"replies.{level}.{lang}")
    return replies


_TRIGGER_KEYS = {"id", "mark", "phrases", "direction", "reach", "window", "ends_at", "void_if", "examples"}


def _parse_trigger(r: _Reader, raw: Any, index: int) -> Trigger | None:
    line = r.lines.get(("context", index))
    tid = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(tid, str) or not _ID.match(tid):
        r.fail("each context trigger needs an id", fld="id", line=line)
        return None
    for key in set(raw) - _TRIGGER_KEYS:
        allowed = ", ".join(sorted(_TRIGGER_KEYS))
        r.fail(f"unknown field (allowed: {allowed})", rule_id=tid, fld=key, line=line)
    choices = {"mark": MARKS, "direction": DIRECTIONS, "reach": REACHES}
    for key, allowed in choices.items():
        if key in raw and raw[key] not in allowed:
            r.fail(f"must be one of {', '.join(allowed)}", rule_id=tid, fld=key, line=line)
    window = raw.get("window", 6)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        r.fail("must be a whole number of words, 1 or more", rule_id=tid, fld="window", line=line)
        window = 6
    examples = []
    for item in raw.get("examples") or []:
        if not (isinstance(item, dict) and set(item) == {"text", "level"} and item["level"] in LEVELS):
            r.fail("each example needs a text and its level", rule_id=tid, fld="examples", line=line)
            continue
        examples.append((str(item["text"]), item["level"]))
    return Trigger(
        id=tid,
        mark=raw.get("mark") if raw.get("mark") in MARKS else MARKS[0],
        phrases=r.phrases(raw.get("phrases"), "phrases", tid, line),
        direction=raw["direction"] if raw.get("direction") in DIRECTIONS else "forward",
        reach=raw["reach"] if raw.get("reach") in REACHES else "clause",
        window=window,
        ends_at=r.strings(raw.get("ends_at"), "ends_at", tid, line),
        void_if=r.strings(raw.get("void_if"), "void_if", tid, line),
        examples=tuple(examples),
        source=str(r.path),
        line=line,
    )


@dataclass
class Parsed:
    triggers: list[Trigger] = field(default_factory=list)
    cue_words: dict[str, Term] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    terms: dict[str, Term] = field(default_factory=dict)
    topics: list[Topic] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    words: dict[str, set[str]] = field(default_factory=lambda: {lang: set() for lang in LANGS})


_TRIAGE_KEYS = {
    *("kind", "settings", "language", "terms", "rules", "replies", "baby_fallback", "context", "cue_words"),
}
_INFO_KEYS = {"kind", "topics", "menu"}


def parse_file(path: Path, data: dict[str, Any], into: Parsed) -> list[RuleFileError]:
    r = _Reader(path)
    allowed = _TRIAGE_KEYS if data["kind"] == "triage" else _INFO_KEYS
    for key in set(data) - allowed:
        r.fail(f"unknown top-level key (allowed: {', '.join(sorted(allowed))})", fld=key)
    if data["kind"] == "triage":
        into.terms.update(_parse_terms(r, data.get("terms") or {}))
        into.cue_words.update(_parse_terms(r, data.get("cue_words") or {}))
        rules = data.get("rules") or []
        if not isinstance(rules, list):
            r.fail("must be a list", fld="rules")
            rules = []
        into.rules.extend(rule for i, raw in enumerate(rules) if (rule := _parse_rule(r, raw, i)))
        context = data.get("context") or []
        if not isinstance(context, list):
            r.fail("must be a list of triggers", fld="context")
            context = []
        into.triggers.extend(t for i, raw in enumerate(context) if (t := _parse_trigger(r, raw, i)))
        parsers = {
            "language": _parse_language,
            "settings": _parse_settings,
            "replies": _parse_replies,
            "baby_fallback": lambda rd, v: rd.per_lang(v, "baby_fallback", None, None),
        }
        for key, parse in parsers.items():
            if key in data:
                into.sections[key] = parse(r, data[key])
    else:
        topics = data.get("topics") or []
        if not isinstance(topics, list):
            r.fail("must be a list", fld="topics")
            topics = []
        for i, raw in enumerate(topics):
            line = r.lines.get(("topics", i))
            tid = raw.get("id") if isinstance(raw, dict) else None
            if not isinstance(tid, str) or not _ID.match(tid):
                r.fail("each topic needs an id", fld="id", line=line)
                continue
            examples = raw.get("examples") or {}
            topic = Topic(
                tid,
                r.phrases(raw.get("phrases"), "phrases", tid, line),
                r.per_lang(raw.get("answer"), "answer", tid, line),
                r.strings(examples.get("fires"), "examples.fires", tid, line),
                r.strings(examples.get("does_not_fire"), "examples.does_not_fire", tid, line),
                str(path),
                line,
            )
            if not topic.phrases or not topic.answer:
                r.fail("needs phrases and an answer", rule_id=tid, line=line)
            into.topics.append(topic)
        if "menu" in data:
            into.sections["menu"] = r.per_lang(data["menu"], "menu", None, None)
    for lang in LANGS:
        into.words[lang] |= r.words[lang]
    return r.problems


def cross_check(parsed: Parsed, where: Path) -> list[RuleFileError]:
    """Checks that need every file: unique ids, referenced terms exist, sections present once."""
    problems: list[RuleFileError] = []
    seen: set[str] = set()
    for item in [*parsed.rules, *parsed.topics]:
        if item.id in seen:
            problems.append(RuleFileError(item.source, "duplicate id", rule_id=item.id, line=item.line))
        seen.add(item.id)
    for trigger in parsed.triggers:
        where = {"rule_id": trigger.id, "line": trigger.line}
        if trigger.id in seen:
            problems.append(RuleFileError(trigger.source, "duplicate id", **where))
        seen.add(trigger.id)
        for ref in [*trigger.ends_at, *trigger.void_if]:
            if ref not in parsed.cue_words:
                problems.append(RuleFileError(trigger.source, f"unknown cue words {ref!r}", **where))
    for rule in parsed.rules:
        refs = [*rule.with_terms, *rule.unless_terms, *([rule.count.term] if rule.count else [])]
        refs += [tok[1:] for p in (*rule.phrases, *rule.exclude) for tok in p.split() if tok.startswith("@")]
        for ref in refs:
            if ref not in parsed.terms:
                problems.append(
                    RuleFileError(rule.source, f"unknown term {ref!r}", rule_id=rule.id, line=rule.line)
                )
    for name in ("language", "settings", "replies", "menu", "baby_fallback"):
        if not parsed.sections.get(name):
            problems.append(RuleFileError(where, f"no rule file defines '{name}'", field=name))
    return problems
