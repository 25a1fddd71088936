"""The ``kind: triage`` / ``kind: info`` rule files, parsed by pydantic models through the
one rule-file layer (``smsbot.rulefiles``).

The code defines what a rule may say; the YAML says it. Every file carries its ``version``
and its clinical sign-off (``reviewed_by``/``reviewed_on``, null until a clinician signs).
Every problem is one RuleFileError naming the file, the line, the rule or term id and the
field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

from smsbot.rulefiles import RULE_FILE, RuleFileError, Text, Texts, YamlLines, parse
from smsbot.triage.matcher import normalise
from smsbot.triage.model import (
    DIRECTIONS,
    MARKS,
    REACHES,
    READING,
    Count,
    Language,
    Range,
    Rule,
    Settings,
    SignOff,
    Term,
    Topic,
    Trigger,
)
from smsbot.vocabulary import LANGS, LEVELS

PLACEHOLDERS = {"emergency_number", "reason", "baby", "answer"}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TERM_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_PHRASE_TOKEN = re.compile(r"^(\.\.\.|@[a-z0-9_-]+|[a-z0-9]+\*?)$")
_WORDS = re.compile(r"^[a-z]+(?: [a-z]+)*$")


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


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return BeforeValidator(check)


def _by_language(value: Any) -> Any:
    """A plain list of phrases matches texts in any language; ``{en: [...], es: [...]}`` tells which."""
    return {"any": value} if isinstance(value, list) else value


def _checked_phrases(value: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    problems = [f"{p!r}: {why}" for items in value.values() for p in items if (why := phrase_problem(p))]
    if problems:
        raise ValueError("; ".join(problems))
    return {lang: tuple(items) for lang, items in value.items()}


Level = Annotated[str, _one_of(LEVELS)]
Mark = Annotated[str, _one_of(MARKS)]
Phrases = Annotated[
    dict[Literal[("any", *LANGS)], list[Text]],  # type: ignore[valid-type]
    BeforeValidator(_by_language),
    AfterValidator(_checked_phrases),
]


class _Strict(BaseModel):
    model_config = RULE_FILE


class PerLang(Texts):
    """One text per reply language (whitespace folded: YAML ``>-`` blocks read as one line)."""

    @field_validator(*LANGS)
    @classmethod
    def _fold(cls, value: str) -> str:
        return " ".join(value.split())


class RangeModel(_Strict):
    at_least: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> RangeModel:
        if self.at_least is None and self.below is None:
            raise ValueError("needs at_least and/or below")
        return self


class CountModel(RangeModel):
    term: str


class Examples(_Strict):
    fires: list[Text] = []
    does_not_fire: list[Text] = []


class TermModel(_Strict):
    phrases: Phrases
    exclude: Phrases = {}
    negatable: bool = True


def _term_body(value: Any) -> Any:
    """A term is ``{phrases, exclude, negatable}`` or, for short, just its phrases."""
    return value if isinstance(value, dict) and "phrases" in value else {"phrases": value}


TermBody = Annotated[TermModel, BeforeValidator(_term_body)]
TermId = Annotated[str, Field(pattern=_TERM_ID.pattern)]


class RuleModel(_Strict):
    """A clinical decision: which findings, under which conditions, give which level, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Annotated[str, Field(pattern=_ID.pattern)]
    level: Level
    findings: list[str] = []
    with_terms: list[str] = Field([], alias="with")
    unless: list[str] = []
    temperature_f: RangeModel | None = None
    count: CountModel | None = None
    age_days: RangeModel | None = None
    only_without_reading: bool = False
    also_counts: list[Mark] = ["past"]
    # true: the learned second opinion may raise the level; false: it is not asked; "urgent":
    # it may raise no higher than urgent.
    second_opinion: bool | Literal["urgent"] = True
    reason: PerLang | None = None
    note: PerLang | None = None
    examples: Examples = Examples()

    @model_validator(mode="after")
    def _complete(self) -> RuleModel:
        if not (self.findings or self.temperature_f or self.count):
            raise ValueError("needs findings, temperature_f or count to trigger it")
        if not self.examples.fires:
            raise ValueError("needs at least one example that fires it (examples.fires)")
        return self


class TriggerExample(_Strict):
    text: Text
    level: Level


class TriggerModel(_Strict):
    """A context cue (see ``model.Trigger``)."""

    id: Annotated[str, Field(pattern=_ID.pattern)]
    mark: Mark
    phrases: Phrases
    direction: Annotated[str, _one_of(DIRECTIONS)] = "forward"
    reach: Annotated[str, _one_of(REACHES)] = "clause"
    window: PositiveInt = 6
    ends_at: list[str] = []
    void_if: list[str] = []
    only: list[str] = []
    examples: list[TriggerExample] = []


class TopicModel(_Strict):
    id: Annotated[str, Field(pattern=_ID.pattern)]
    phrases: Phrases
    answer: PerLang
    examples: Examples = Examples()


class SettingsModel(_Strict):
    """Matcher tuning that a clinician may want to review (age assumed when unknown)."""

    assumed_age_days: Annotated[int, Field(ge=0)] = 60
    # Fuzzy matching short words is unsafe ("shots" is not "shakes").
    fuzzy_min_length: Annotated[int, Field(ge=5)] = 6
    fuzzy_min_ratio: Annotated[float, Field(ge=0, le=100)] = 88.0
    fuzzy_ignore: list[Text] = []
    negation_window: Annotated[int, Field(ge=0)] = 4
    gap_max: Annotated[int, Field(ge=0)] = 4


Words = list[Text]


class LanguageModel(_Strict):
    """Words the matcher needs to read texts (not clinical content); see ``model.Language``."""

    negation_cues: Words = []
    pseudo_negations: Words = []
    scope_breaks: Words = []
    contrasts: Words = []
    continuers: Words = []
    celsius_units: Words = []
    fahrenheit_units: Words = []
    degree_units: Words = []
    temperature_context: Words = []
    non_temperature_units: Words = []
    not_age_cues: Words = []
    decimal_words: Words = []
    zero_words: Words = []
    hints: dict[Literal[LANGS], Words]  # type: ignore[valid-type]
    numbers: dict[str, int] = {}
    age_units: dict[str, int] = {}
    emoji: dict[str, Any] = {}
    shorthand: dict[str, Any] = {}
    digit_words: dict[str, Any] = {}
    phonetic_swaps: list[Any] = []

    @field_validator("hints")
    @classmethod
    def _both_languages(cls, value: dict[str, Words]) -> dict[str, Words]:
        if set(value) != set(LANGS):
            raise ValueError("must list words for en and es")
        return value

    @field_validator("emoji")
    @classmethod
    def _emoji(cls, raw: dict[str, Any]) -> dict[str, dict[str, str]]:
        """``{"🔵": {en: blue, es: azul}, "🫨": shaking}``: the word(s) each emoji is read as."""
        table, problems = {}, []
        for char, value in raw.items():
            if not char.strip() or char.isascii() or any(c.isalnum() for c in char):
                problems.append(f"{char!r}: keys must be emoji (no letters, digits or plain ASCII)")
                continue
            words = dict.fromkeys(LANGS, value) if isinstance(value, str) else value
            if not isinstance(words, dict) or set(words) != set(LANGS):
                problems.append(f"{char!r}: must be a word or give words for en and es")
            elif not all(isinstance(w, str) and _WORDS.match(normalise(w)) for w in words.values()):
                problems.append(f"{char!r}: words must be plain lower-case words")
            else:
                table[char] = {lang: normalise(w) for lang, w in words.items()}
        if problems:
            raise ValueError("; ".join(problems))
        return table

    @field_validator("shorthand", "digit_words")
    @classmethod
    def _word_table(cls, raw: dict[str, Any], info: Any) -> dict[str, tuple[str, ...]]:
        """``{bby: baby, idk: i dont know}`` or ``{"2": [to, too]}``: a token and what it is read as."""
        digits = info.field_name == "digit_words"
        key_ok = str.isdigit if digits else str.isalnum
        table, problems = {}, []
        for key, value in raw.items():
            key = str(key)
            values = value if isinstance(value, list) else [value]
            if key != normalise(key) or not key_ok(key):
                kind = "one lower-case token of digits" if digits else "one lower-case token"
                problems.append(f"{key!r}: keys must be {kind}")
            elif not values or not all(isinstance(v, str) and _WORDS.match(v) for v in values):
                problems.append(f"{key!r}: must be plain lower-case words")
            else:
                # shorthand: one reading, maybe of several words; digit_words: alternative single words
                table[key] = tuple(values) if digits else tuple(" ".join(values).split())
        if problems:
            raise ValueError("; ".join(problems))
        return table

    @field_validator("phonetic_swaps")
    @classmethod
    def _swaps(cls, raw: list[Any]) -> list[tuple[str, str]]:
        """``[[b, v], ["", h]]``: one letter group swapped for another; an empty first one adds a prefix."""
        ok = all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(x, str) and (x == "" or (x.isalpha() and x == normalise(x))) for x in p)
            and p[0] != p[1]
            for p in raw
        )
        if not ok:
            raise ValueError('must be a list of [letters, letters] pairs, e.g. [b, v] or ["", h]')
        return [(a, b) for a, b in raw]


class _SignedFile(_Strict):
    """What every triage and info file carries: its version and its clinical sign-off."""

    kind: str
    version: PositiveInt
    reviewed_by: Text | None
    reviewed_on: date | None

    @model_validator(mode="after")
    def _signed_together(self) -> _SignedFile:
        if (self.reviewed_by is None) != (self.reviewed_on is None):
            raise ValueError("reviewed_by and reviewed_on are given together (both null until signed off)")
        return self


class TriageFile(_SignedFile):
    kind: Literal["triage"]
    settings: SettingsModel | None = None
    language: LanguageModel | None = None
    terms: dict[TermId, TermBody] = {}
    cue_words: dict[TermId, TermBody] = {}
    rules: list[RuleModel] = []
    context: list[TriggerModel] = []
    replies: dict[Level, PerLang] | None = None
    baby_fallback: PerLang | None = None

    @field_validator("replies")
    @classmethod
    def _replies(cls, value: dict[str, PerLang] | None) -> dict[str, PerLang] | None:
        if value is None:
            return None
        if set(value) != set(LEVELS):
            raise ValueError(f"must give a reply for each level: {', '.join(LEVELS)}")
        problems = []
        for level, texts in value.items():
            for lang in LANGS:
                text = getattr(texts, lang)
                try:
                    names = {name for _, name, _, _ in Formatter().parse(text) if name is not None}
                except ValueError as exc:
                    problems.append(f"{level}.{lang}: bad placeholder: {exc}")
                    continue
                if names - PLACEHOLDERS:
                    problems.append(f"{level}.{lang}: unknown placeholders {sorted(names - PLACEHOLDERS)}")
                if "emergency_number" not in names:
                    problems.append(f"{level}.{lang}: must include {{emergency_number}}")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class InfoFile(_SignedFile):
    kind: Literal["info"]
    topics: list[TopicModel] = []
    menu: PerLang | None = None


FILE_MODELS: dict[str, type[_SignedFile]] = {"triage": TriageFile, "info": InfoFile}


@dataclass
class Parsed:
    """What the files of one directory say, gathered before the cross-file checks."""

    files: list[SignOff] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    cue_words: dict[str, Term] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    terms: dict[str, Term] = field(default_factory=dict)
    topics: list[Topic] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    words: dict[str, set[str]] = field(default_factory=lambda: {lang: set() for lang in LANGS})
    defined_in: dict[str, str] = field(default_factory=dict)  # "term:x"/"section:y" → file
    problems: list[RuleFileError] = field(default_factory=list)


def parse_file(path: Path, data: dict[str, Any], into: Parsed) -> list[RuleFileError]:
    """Validate one file; on success add what it says to ``into``. Returns its problems."""
    parsed, problems = parse(path, data, FILE_MODELS[data["kind"]], named_lists=_LISTS, named_tables=_TABLES)
    if parsed is None:
        return problems
    lines = YamlLines(path)
    into.files.append(
        SignOff(path.name, parsed.version, parsed.reviewed_by, parsed.reviewed_on, path.read_bytes())
    )
    problems: list[RuleFileError] = []
    if isinstance(parsed, TriageFile):
        for section, table, target in (
            ("terms", parsed.terms, into.terms),
            ("cue_words", parsed.cue_words, into.cue_words),
        ):
            for tid, body in table.items():
                problems += _define(into, path, f"{section}:{tid}", lines.at((section, tid)))
                target[tid] = _term(tid, body, into)
        for i, raw in enumerate(parsed.rules):
            into.rules.append(_rule(raw, str(path), lines.at(("rules", i))))
        for i, raw in enumerate(parsed.context):
            into.triggers.append(_trigger(raw, str(path), lines.at(("context", i)), into))
        for name in ("settings", "language", "replies", "baby_fallback"):
            value = getattr(parsed, name)
            if value is not None:
                problems += _define(into, path, f"section:{name}", lines.at((name,)))
                into.sections[name] = _section(name, value)
    else:
        for i, raw in enumerate(parsed.topics):
            answer = raw.answer.model_dump()
            phrases = _flat(raw.phrases, into)
            examples = raw.examples
            line = lines.at(("topics", i))
            into.topics.append(
                Topic(
                    raw.id,
                    phrases,
                    answer,
                    tuple(examples.fires),
                    tuple(examples.does_not_fire),
                    str(path),
                    line,
                )
            )
        if parsed.menu is not None:
            problems += _define(into, path, "section:menu", lines.at(("menu",)))
            into.sections["menu"] = parsed.menu.model_dump()
    return problems


def _define(into: Parsed, path: Path, key: str, line: int | None) -> list[RuleFileError]:
    """Each term and each section is defined in one file only: a second one would silently win."""
    first = into.defined_in.setdefault(key, str(path))
    if first == str(path):
        return []
    kind, _, name = key.partition(":")
    where = {"rule_id": name} if kind != "section" else {"field": name}
    return [RuleFileError(path, f"already defined in {Path(first).name}", line=line, **where)]


def _flat(phrases: dict[str, tuple[str, ...]], into: Parsed) -> tuple[str, ...]:
    """All phrases of a ``{lang: phrases}`` table; words of one language tell the text's language."""
    for lang, items in phrases.items():
        if lang in into.words:
            into.words[lang].update(t for p in items for t in normalise(p).split() if t.isalpha())
    return tuple(p for items in phrases.values() for p in items)


def _term(tid: str, body: TermModel, into: Parsed) -> Term:
    return Term(tid, _flat(body.phrases, into), body.negatable, _flat(body.exclude, into))


def _range(value: RangeModel | None) -> Range | None:
    return Range(value.at_least, value.below) if value else None


def _rule(raw: RuleModel, source: str, line: int | None) -> Rule:
    return Rule(
        id=raw.id,
        level=raw.level,
        findings=tuple(raw.findings),
        with_terms=tuple(raw.with_terms),
        unless_terms=tuple(raw.unless),
        temperature_f=_range(raw.temperature_f),
        count=Count(raw.count.term, Range(raw.count.at_least, raw.count.below)) if raw.count else None,
        age_days=_range(raw.age_days),
        only_without_reading=raw.only_without_reading,
        also_counts=frozenset(raw.also_counts),
        second_opinion=raw.second_opinion,
        reason=raw.reason.model_dump() if raw.reason else {},
        note=raw.note.model_dump() if raw.note else {},
        fires=tuple(raw.examples.fires),
        does_not_fire=tuple(raw.examples.does_not_fire),
        source=source,
        line=line,
    )


def _trigger(raw: TriggerModel, source: str, line: int | None, into: Parsed) -> Trigger:
    return Trigger(
        id=raw.id,
        mark=raw.mark,
        phrases=_flat(raw.phrases, into),
        direction=raw.direction,
        reach=raw.reach,
        window=raw.window,
        ends_at=tuple(raw.ends_at),
        void_if=tuple(raw.void_if),
        only=frozenset(raw.only),
        examples=tuple((e.text, e.level) for e in raw.examples),
        source=source,
        line=line,
    )


def _section(name: str, value: Any) -> Any:
    if name == "settings":
        return Settings(
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in value.model_dump().items()}
        )
    if name == "language":
        raw = value.model_dump()
        tuples = {"pseudo_negations", "phonetic_swaps"}
        sets = {k for k, v in raw.items() if isinstance(v, list) and k not in tuples}
        return Language(
            **{k: frozenset(v) for k, v in raw.items() if k in sets},
            pseudo_negations=tuple(sorted(raw["pseudo_negations"])),
            phonetic_swaps=tuple(tuple(p) for p in raw["phonetic_swaps"]),
            hints={lang: tuple(words) for lang, words in raw["hints"].items()},
            numbers=raw["numbers"],
            age_units=raw["age_units"],
            emoji=raw["emoji"],
            shorthand={k: tuple(v) for k, v in raw["shorthand"].items()},
            digit_words={k: tuple(v) for k, v in raw["digit_words"].items()},
        )
    if name == "replies":
        return {level: texts.model_dump() for level, texts in value.items()}
    return value.model_dump()


# Where in a file an error is: items of these lists are named by their id, term tables by key.
_LISTS = ("rules", "topics", "context")
_TABLES = ("terms", "cue_words")


def cross_check(parsed: Parsed, where: Path) -> list[RuleFileError]:
    """Checks that need every file: unique ids, referenced terms exist, sections present."""
    problems: list[RuleFileError] = []
    seen: set[str] = set()
    for item in [*parsed.rules, *parsed.topics, *parsed.triggers]:
        if item.id in seen:
            problems.append(RuleFileError(item.source, "duplicate id", rule_id=item.id, line=item.line))
        seen.add(item.id)
    words = {**parsed.terms, **parsed.cue_words}

    def missing(refs: list[str], known: dict[str, Term]) -> list[str]:
        return [ref for ref in refs if ref not in known]

    def embedded(phrases: tuple[str, ...]) -> list[str]:
        return [tok[1:] for p in phrases for tok in p.split() if tok.startswith("@")]

    for rule in parsed.rules:
        refs = [
            *rule.findings,
            *rule.with_terms,
            *rule.unless_terms,
            *([rule.count.term] if rule.count else []),
        ]
        for ref in missing(refs, parsed.terms):
            problems.append(
                RuleFileError(rule.source, f"unknown term {ref!r}", rule_id=rule.id, line=rule.line)
            )
    for trigger in parsed.triggers:
        refs = [*trigger.ends_at, *trigger.void_if]
        for ref in missing(refs, parsed.cue_words):
            msg = f"unknown cue words {ref!r}"
            problems.append(RuleFileError(trigger.source, msg, rule_id=trigger.id, line=trigger.line))
        for ref in missing(sorted(trigger.only - {READING}), parsed.terms):
            msg = f"unknown term {ref!r} in only"
            problems.append(RuleFileError(trigger.source, msg, rule_id=trigger.id, line=trigger.line))
        for ref in missing(embedded(trigger.phrases), words):
            msg = f"unknown term {ref!r}"
            problems.append(RuleFileError(trigger.source, msg, rule_id=trigger.id, line=trigger.line))
    for table, known in ((parsed.terms, parsed.terms), (parsed.cue_words, words)):
        for tid, term in table.items():
            for ref in missing(embedded((*term.phrases, *term.exclude)), known):
                problems.append(RuleFileError(where, f"unknown term {ref!r}", rule_id=tid, field="phrases"))
    for name in ("language", "settings", "replies", "menu", "baby_fallback"):
        if not parsed.sections.get(name):
            problems.append(RuleFileError(where, f"no rule file defines '{name}'", field=name))
    return problems
