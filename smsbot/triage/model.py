"""The typed rule objects the triage engine reads; ``schema.py`` builds them from YAML.

Frozen dataclasses, so a loaded rule set cannot drift while messages are being triaged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

# What the context layer may say about a finding (ConText: Harkema et al. 2009). Whose sign:
# the parent's, another person's, an object's; when: long ago, or already seen by a doctor;
# hypothetical (a plan or a question about what a sign looks like); figurative ("convulsing
# with laughter"); negated, for denials the negation words cannot see ("Fiebre? No."). A
# finding with any of them does not count, except the marks a rule lists in ``also_counts``
# (by default "past": a seizure last week is still a red flag).
MARKS = ("negated", "parent", "other", "object", "past", "assessed", "hypothetical", "figurative")
DIRECTIONS = ("forward", "backward", "both")
# "answer": the cue is a sentence of its own ("Fiebre? No.") and reaches the sentence before.
REACHES = ("clause", "sentence", "answer")
# What a trigger's ``only`` calls a temperature reading, beside the vocabulary's term ids.
READING = "reading"


@dataclass(frozen=True)
class Range:
    """Half-open numeric range ``at_least <= x < below``; either end may be open."""

    at_least: float | None = None
    below: float | None = None

    def __contains__(self, value: float) -> bool:
        return (self.at_least is None or value >= self.at_least) and (
            self.below is None or value < self.below
        )


@dataclass(frozen=True)
class Count:
    """A number written just before a phrase of ``term`` ("2 wet diapers", "10 min")."""

    term: str
    range: Range


@dataclass(frozen=True)
class Term:
    """A named synonym list that rules combine with ``with``/``unless`` or embed as ``@id``."""

    id: str
    phrases: tuple[str, ...]
    negatable: bool = True
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One clinical decision: a red flag (or benign pattern) at one level. It fires when one of
    its ``findings`` (vocabulary terms), a temperature or a count is found and every condition holds."""

    id: str
    level: str
    findings: tuple[str, ...] = ()
    with_terms: tuple[str, ...] = ()
    unless_terms: tuple[str, ...] = ()
    temperature_f: Range | None = None
    count: Count | None = None
    age_days: Range | None = None
    only_without_reading: bool = False
    # Context marks under which this rule's own findings and readings still count: "past" for
    # red flags (not for fevers), "other"/"parent" for causes (the mother's methadone).
    also_counts: frozenset[str] = frozenset({"past"})
    # False for rules that say a text is not a symptom report (sensitive news): the learned
    # second opinion, trained on symptom reports, is not asked about it. "urgent" for rules
    # that find a sign the text is benign (the hold test passed): it may raise no higher.
    second_opinion: bool | str = True
    reason: Mapping[str, str] = field(default_factory=dict)
    note: Mapping[str, str] = field(default_factory=dict)  # added to any reply when it fits
    fires: tuple[str, ...] = ()
    does_not_fire: tuple[str, ...] = ()
    source: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Trigger:
    """A context cue: it gives ``mark`` to every finding wholly inside its scope.

    The scope runs from the cue in ``direction`` up to ``window`` words, never past the end of
    its clause (or sentence, per ``reach``), a "but", or a phrase of an ``ends_at`` cue word
    list. The cue says nothing in a sentence holding a phrase of a ``void_if`` list ("right
    now"), nor inside a phrase of its own ``ends_at`` ("brother" in "my baby brother").
    With ``only``, the mark goes only to a finding that lies within a phrase of one of those
    terms (or to a temperature reading, ``READING``): "onesie" explains a colour, not a shake.
    """

    id: str
    mark: str
    phrases: tuple[str, ...]
    direction: str = "forward"
    reach: str = "clause"
    window: int = 6
    ends_at: tuple[str, ...] = ()
    void_if: tuple[str, ...] = ()
    only: frozenset[str] = frozenset()  # empty: every finding
    examples: tuple[tuple[str, str], ...] = ()  # (text, level the whole text gets)
    source: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Topic:
    """An info answer (FAQ) chosen when a message has no symptom."""

    id: str
    phrases: tuple[str, ...]
    answer: Mapping[str, str]
    fires: tuple[str, ...] = ()
    does_not_fire: tuple[str, ...] = ()
    source: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Language:
    """Words the matcher needs to read texts (not clinical content): negation, numbers, units."""

    negation_cues: frozenset[str]
    pseudo_negations: tuple[str, ...]
    scope_breaks: frozenset[str]
    contrasts: frozenset[str]
    continuers: frozenset[str]
    hints: Mapping[str, tuple[str, ...]]
    numbers: Mapping[str, int]
    celsius_units: frozenset[str]
    fahrenheit_units: frozenset[str]
    degree_units: frozenset[str]
    temperature_context: frozenset[str]
    non_temperature_units: frozenset[str]
    age_units: Mapping[str, int]
    not_age_cues: frozenset[str]
    # Words for a decimal point in a number written out ("thirty eight point five").
    decimal_words: frozenset[str] = frozenset()
    # Words read as a zero digit inside a spoken number ("one oh one").
    zero_words: frozenset[str] = frozenset()
    # Emoji read as words, per reply language: {"🔵": {"en": "blue", "es": "azul"}}. Emoji not
    # listed end a clause like a full stop.
    emoji: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Texting shorthand read as the word(s) it stands for, whole tokens only: {"bby": "baby"}.
    shorthand: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Digits texted for words ("hard 2 wake", "stopped 4 a minute"): a phrase word may match the
    # digit, while the digit stays a number for temperatures and counts: {"2": ("to", "too")}.
    digit_words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Spanish spelled by ear ("bomito", "boltean", "cabesa"): letter swaps tried, one at a time,
    # on a word of a Spanish text that no phrase knows: (("b", "v"), ("h", "")) ...
    phonetic_swaps: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Settings:
    """Matcher tuning that a clinician may want to review (age assumed when unknown)."""

    assumed_age_days: int
    fuzzy_min_length: int
    fuzzy_min_ratio: float
    fuzzy_ignore: tuple[str, ...]
    negation_window: int
    gap_max: int


@dataclass(frozen=True)
class SignOff:
    """A rule file's version and its clinical sign-off (reviewer and date, None until signed)."""

    name: str
    version: int
    reviewed_by: str | None
    reviewed_on: date | None
    content: bytes = field(repr=False, default=b"")


@dataclass(eq=False)
class RuleSet:
    """Everything the triage engine and the replies read; identity-hashed so engines can be cached."""

    rules: tuple[Rule, ...]
    terms: Mapping[str, Term]
    topics: tuple[Topic, ...]
    language: Language
    settings: Settings
    replies: Mapping[str, Mapping[str, str]]
    menu: Mapping[str, str]
    baby_fallback: Mapping[str, str]
    triggers: tuple[Trigger, ...] = ()
    # Words the context triggers read (their scope ends, "right now"): never clinical findings.
    cue_words: Mapping[str, Term] = field(default_factory=dict)
    # Words that appear only in one language's phrases: they tell the engine which language a text is in.
    lang_words: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The files it was read from, and one version string for all of them: recorded with every
    # stored decision, so a decision can be traced to the exact rules that made it.
    files: tuple[SignOff, ...] = ()

    @property
    def version(self) -> str:
        """``<sum of file versions>.<digest of every file's name, version and bytes>``: any edit
        changes it, even one whose author forgot to raise the file's ``version``."""
        digest = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.name):
            digest.update(f"{f.name}\0{f.version}\0".encode() + f.content + b"\0")
        return f"{sum(f.version for f in self.files)}.{digest.hexdigest()[:12]}"
