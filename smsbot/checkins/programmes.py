"""Check-in programmes from ``rules/checkins.yaml`` (``kind: checkins``), parsed through the
one rule-file layer into typed values.

The YAML says what to send and when; the models here say what a programme may say, and a
file that breaks them is refused with the file, line, programme and field, so a typo in
clinical content fails ``smsbot rules check`` instead of a parent's check-in. The parsed
file becomes plain frozen values (``Programmes``) for the scheduler and the conversation.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from smsbot.messaging.segments import count_segments
from smsbot.rulefiles import RULE_FILE, RuleFileError, Texts, YamlLines, parse, read_rule_file
from smsbot.vocabulary import DEFAULT_LANG, LANGS, LEVELS, MAX_SEGMENTS, OUTCOMES

FILENAME = "checkins.yaml"
PLACEHOLDERS = frozenset({"baby", "emergency_number"})
# Long enough to catch texts that only fit with a short name.
SAMPLE_VALUES = {"baby": "Maria Fernanda", "emergency_number": "112"}
PROGRAMMES = ("programmes",)  # errors inside a programme are named by its id

Localized = dict[str, str]  # language → text


@dataclass(frozen=True)
class Step:
    """One check-in: ``day``+``at`` (local wall clock after the anchor date) or ``hours`` later."""

    number: int  # 1-based, stored in ``CheckIn.step``
    text: Localized
    day: int | None = None
    at: time | None = None
    hours: float | None = None


@dataclass(frozen=True)
class Programme:
    id: str
    steps: tuple[Step, ...]
    anchor: str = "event"  # event: the report or enrollment; birth: the baby's birth date

    def step(self, number: int) -> Step | None:
        return self.steps[number - 1] if 1 <= number <= len(self.steps) else None


@dataclass(frozen=True)
class Programmes:
    """Everything ``checkins.yaml`` says, ready for the scheduler and the conversation."""

    programmes: dict[str, Programme]
    triggers: dict[str, str]  # triage level or "enrollment" → programme id
    answers: dict[str, str]  # normalised reply phrase → outcome
    texts: dict[str, Localized]  # baby, footer, last_message
    replies: dict[str, Localized]  # outcome → reply

    def programme(self, programme_id: str) -> Programme:
        try:
            return self.programmes[programme_id]
        except KeyError:
            raise KeyError(f"no check-in programme {programme_id!r} in {FILENAME}") from None

    def render(self, text: Localized, language: str, *, baby_name: str | None, emergency_number: str) -> str:
        """Fill the placeholders in the family's language (English when it has no text)."""
        lang = language if language in text else DEFAULT_LANG
        baby = baby_name or self.texts["baby"].get(lang, self.texts["baby"][DEFAULT_LANG])
        return text[lang].format(baby=baby, emergency_number=emergency_number)

    def checkin_text(self, step: Step) -> Localized:
        """A step's question followed by the footer (how to answer, emergency number)."""
        footer = self.texts["footer"]
        default = footer[DEFAULT_LANG]
        return {lang: f"{text} {footer.get(lang, default)}" for lang, text in step.text.items()}


class _Part(BaseModel):
    model_config = RULE_FILE


def _known_placeholders(text: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad placeholder: {exc}") from None
    if unknown := names - PLACEHOLDERS:
        raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}")
    return text


class CheckinTexts(Texts):
    """A text in each language, with only the placeholders a check-in fills."""

    @field_validator(*LANGS)
    @classmethod
    def _placeholders(cls, text: str) -> str:
        return _known_placeholders(text)


def _not_a_flag(value: Any) -> Any:
    """YAML reads ``yes`` and ``no`` as booleans, which are numbers to Python: not here."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    return value


def _local_time(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a local time HH:MM") from None


class StepModel(_Part):
    """``day`` (whole days after the anchor date) with ``at`` (local HH:MM), or ``hours`` later."""

    day: Annotated[StrictInt, Field(ge=0)] | None = None
    at: Annotated[str, Field(pattern=r"^\d{2}:\d{2}$"), AfterValidator(_local_time)] | None = None
    hours: Annotated[float, BeforeValidator(_not_a_flag), Field(gt=0)] | None = None
    text: CheckinTexts | None = None

    @model_validator(mode="after")
    def _when(self) -> StepModel:
        if self.hours is not None and (self.day is not None or self.at is not None):
            raise ValueError("give either hours or day+at, not both")
        if self.hours is None and (self.day is None or self.at is None):
            raise ValueError("needs hours, or day (a whole number ≥ 0) with at")
        return self

    @property
    def offset(self) -> float:
        """Hours after the anchor, for ordering the steps."""
        if self.hours is not None:
            return self.hours
        return self.day * 24 + self.at.hour + self.at.minute / 60  # type: ignore[operator, union-attr]


class ProgrammeModel(_Part):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    anchor: Literal["event", "birth"] = "event"  # event: the report or enrollment; birth: the birth date
    text: CheckinTexts | None = None  # every step's, unless a step has its own
    steps: Annotated[list[StepModel], Field(min_length=1)]

    @model_validator(mode="after")
    def _steps_in_order(self) -> ProgrammeModel:
        problems = []
        for number, (step, before) in enumerate(zip(self.steps, [None, *self.steps], strict=False), start=1):
            if step.text is None and self.text is None:
                problems.append(f"step {number}: needs a text (or the programme one)")
            if before is not None and step.offset <= before.offset:
                problems.append(f"step {number}: must come after the step before it")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def normalise_answer(text: str) -> str:
    """Lower case, punctuation and emoji dropped, spaces collapsed: " Better!" → "better"."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def _an_answer(phrase: Any) -> str:
    if not normalise_answer(str(phrase)):
        raise ValueError(f"{phrase!r} is empty once punctuation is dropped")
    return str(phrase)


AnswerPhrases = Annotated[list[Annotated[str, BeforeValidator(_an_answer)]], Field(min_length=1)]


class Answers(_Part):
    """Whole short replies ("2", "Better!") read as each outcome."""

    better: AnswerPhrases
    same: AnswerPhrases
    worse: AnswerPhrases


class SharedTexts(_Part):
    baby: CheckinTexts  # "your baby", when the family gave no name
    footer: CheckinTexts  # after every check-in: how to answer
    last_message: CheckinTexts  # in place of the next check-in, after three without an answer


class Replies(_Part):
    """Our answer to each recorded outcome."""

    better: CheckinTexts
    same: CheckinTexts
    worse: CheckinTexts


# What can start a programme: a triage level, or a clinic enrollment (its default programme).
Trigger = Literal[(*LEVELS, "enrollment")]  # type: ignore[valid-type]


class CheckinsFile(_Part):
    kind: Literal["checkins"]
    triggers: dict[Trigger, str]
    answers: Answers
    texts: SharedTexts
    replies: Replies
    programmes: Annotated[list[ProgrammeModel], Field(min_length=1)]

    @field_validator("triggers")
    @classmethod
    def _enrollment_has_one(cls, triggers: dict[str, str]) -> dict[str, str]:
        if "enrollment" not in triggers:
            raise ValueError("needs the enrollment programme (enrollment: <programme id>)")
        return triggers


def check_file(path: Path, data: dict[str, Any]) -> list[RuleFileError]:
    """Every problem of a ``kind: checkins`` file: its schema, then what needs the whole file."""
    parsed, problems = parse(path, data, CheckinsFile, named_lists=PROGRAMMES)
    if parsed is None:
        return problems
    return _whole_file_problems(path, parsed)


def _whole_file_problems(path: Path, parsed: CheckinsFile) -> list[RuleFileError]:
    """Programme ids once each, triggers naming programmes that exist, an answer under one
    outcome only, and every message within the SMS budget."""
    lines = YamlLines(path)

    def problem(
        reason: str, *loc: Any, rule_id: str | None = None, field: str | None = None
    ) -> RuleFileError:
        return RuleFileError(path, reason, rule_id=rule_id, field=field, line=lines.at(loc))

    problems = []
    ids: set[str] = set()
    for index, programme in enumerate(parsed.programmes):
        if programme.id in ids:
            problems.append(
                problem("duplicate programme id", "programmes", index, "id", rule_id=programme.id)
            )
        ids.add(programme.id)
    for trigger, programme_id in parsed.triggers.items():
        if programme_id not in ids:
            where = f"triggers.{trigger}"
            problems.append(problem(f"unknown programme {programme_id!r}", "triggers", trigger, field=where))
    seen: dict[str, str] = {}
    for outcome in OUTCOMES:
        for index, phrase in enumerate(getattr(parsed.answers, outcome)):
            first = seen.setdefault(normalise_answer(phrase), outcome)
            if first != outcome:
                reason = f"{phrase!r} is also listed under {first}"
                problems.append(problem(reason, "answers", outcome, index, field=f"answers.{outcome}"))
    for loc, rule_id, field, text in _messages(parsed):
        for lang, value in text.model_dump().items():
            segments = count_segments(value.format(**SAMPLE_VALUES))
            if segments > MAX_SEGMENTS:
                reason = f"{segments} SMS segments, over {MAX_SEGMENTS}"
                problems.append(problem(reason, *loc, lang, rule_id=rule_id, field=f"{field}.{lang}"))
    return problems


def _messages(parsed: CheckinsFile) -> list[tuple[tuple[Any, ...], str | None, str, Texts]]:
    """Every message the file makes, as sent: (where, programme, field, its texts)."""
    footer = parsed.texts.footer
    found: list[tuple[tuple[Any, ...], str | None, str, Texts]] = [
        (("texts", "last_message"), None, "texts.last_message", parsed.texts.last_message),
        *(
            (("replies", outcome), None, f"replies.{outcome}", getattr(parsed.replies, outcome))
            for outcome in OUTCOMES
        ),
    ]
    for index, programme in enumerate(parsed.programmes):
        for number, step in enumerate(programme.steps):
            question = step.text or programme.text
            asked, after = question.model_dump(), footer.model_dump()  # type: ignore[union-attr]
            with_footer = Texts(**{lang: f"{asked[lang]} {after[lang]}" for lang in LANGS})
            loc = ("programmes", index, "steps", number, "text")
            found.append((loc, programme.id, f"steps.{number}.text", with_footer))
    return found


@lru_cache(maxsize=8)
def load_programmes(rules_dir: Path | str) -> Programmes:
    """Parse and check ``<rules_dir>/checkins.yaml`` once per directory; the first problem
    found is raised as a RuleFileError."""
    path = Path(rules_dir) / FILENAME
    parsed, problems = parse(path, read_rule_file(path), CheckinsFile, named_lists=PROGRAMMES)
    if parsed is None or (problems := _whole_file_problems(path, parsed)):
        raise problems[0]
    return _build(parsed)


def _build(parsed: CheckinsFile) -> Programmes:
    programmes = {}
    for raw in parsed.programmes:
        steps = tuple(
            Step(
                number=number,
                text=(step.text or raw.text).model_dump(),  # type: ignore[union-attr]
                day=step.day,
                at=step.at,  # type: ignore[arg-type]
                hours=step.hours,
            )
            for number, step in enumerate(raw.steps, start=1)
        )
        programmes[raw.id] = Programme(id=raw.id, steps=steps, anchor=raw.anchor)
    answers = {
        normalise_answer(phrase): outcome
        for outcome in OUTCOMES
        for phrase in getattr(parsed.answers, outcome)
    }
    return Programmes(
        programmes=programmes,
        triggers=dict(parsed.triggers),
        answers=answers,
        texts=parsed.texts.model_dump(),
        replies=parsed.replies.model_dump(),
    )
