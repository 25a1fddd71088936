"""Check-in programmes from ``rules/checkins.yaml``, parsed into typed, validated objects.

The YAML says what to send and when; this module defines what a programme may say and
refuses a file that breaks it, naming the file and programme, so a typo in clinical
content fails ``smsbot rules check`` instead of a parent's check-in.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from smsbot.messaging.segments import count_segments
from smsbot.vocabulary import DEFAULT_LANG, LANGS, LEVELS, MAX_SEGMENTS, OUTCOMES

FILENAME = "checkins.yaml"
# What can start a programme: a triage level, or a clinic enrollment (its default programme).
TRIGGERS = (*LEVELS, "enrollment")
ANCHORS = ("event", "birth")
PLACEHOLDERS = frozenset({"baby", "emergency_number"})
SHARED_TEXTS = ("baby", "footer", "last_message")
# Long enough to catch texts that only fit with a short name.
SAMPLE_VALUES = {"baby": "Maria Fernanda", "emergency_number": "112"}

Localized = dict[str, str]  # language → text


class ProgrammeFileError(ValueError):
    """``checkins.yaml`` is invalid; the message lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


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


def normalise_answer(text: str) -> str:
    """Lower case, punctuation and emoji dropped, spaces collapsed: " Better!" → "better"."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


@lru_cache(maxsize=8)
def load_programmes(rules_dir: Path | str) -> Programmes:
    """Parse and validate ``<rules_dir>/checkins.yaml`` once per directory."""
    path = Path(rules_dir) / FILENAME
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = validate_checkins_file(path, data)
    if errors:
        raise ProgrammeFileError(errors)
    return _build(data)


def validate_checkins_file(path: Path, data: dict[str, Any]) -> list[str]:
    """Every problem in a ``kind: checkins`` file as ``"<file>: <programme-id>: <reason>"``."""
    if not isinstance(data, dict):
        return [f"{path.name}: file: must be a mapping with kind: checkins"]
    errors: list[tuple[str, str]] = []
    if data.get("kind") != "checkins":
        errors.append(("kind", "must be 'checkins'"))
    programmes = data.get("programmes")
    if not isinstance(programmes, list) or not programmes:
        errors.append(("programmes", "must be a non-empty list"))
        programmes = []
    ids: set[str] = set()
    for index, programme in enumerate(programmes):
        pid = programme.get("id") if isinstance(programme, dict) else None
        if not isinstance(pid, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", pid):
            errors.append((f"programmes[{index}]", "needs an id of lower-case letters, digits and _"))
            continue
        if pid in ids:
            errors.append((pid, "duplicate programme id"))
        ids.add(pid)
        errors += [(pid, reason) for reason in _programme_errors(programme)]
    errors += [("triggers", reason) for reason in _trigger_errors(data.get("triggers"), ids)]
    errors += [("answers", reason) for reason in _answer_errors(data.get("answers"))]
    texts, replies = data.get("texts"), data.get("replies")
    for section, required in (("texts", SHARED_TEXTS), ("replies", OUTCOMES)):
        block = data.get(section)
        if not isinstance(block, dict):
            errors.append((section, "must be a mapping"))
            continue
        for name in required:
            errors += [(f"{section}.{name}", reason) for reason in _localized_errors(block.get(name))]
    if isinstance(texts, dict) and isinstance(replies, dict):
        errors += _length_errors(data, texts)
    return [f"{path.name}: {where}: {reason}" for where, reason in errors]


def _programme_errors(programme: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if programme.get("anchor", "event") not in ANCHORS:
        errors.append(f"anchor must be one of {', '.join(ANCHORS)}")
    if "text" in programme:
        errors += _localized_errors(programme["text"])
    steps = programme.get("steps")
    if not isinstance(steps, list) or not steps:
        return [*errors, "steps must be a non-empty list"]
    previous = -1.0
    for number, step in enumerate(steps, start=1):
        offset, step_errors = _step_offset(step)
        errors += [f"step {number}: {reason}" for reason in step_errors]
        if "text" not in step and "text" not in programme:
            errors.append(f"step {number}: needs a text (or the programme one)")
        elif "text" in step:
            errors += [f"step {number}: {reason}" for reason in _localized_errors(step["text"])]
        if offset is not None:
            if offset <= previous:
                errors.append(f"step {number}: must come after the step before it")
            previous = offset
    return errors


def _step_offset(step: Any) -> tuple[float | None, list[str]]:
    """The step's offset in hours (for ordering) and what is wrong with its timing."""
    if not isinstance(step, dict):
        return None, ["must be a mapping"]
    if "hours" in step:
        hours = step["hours"]
        if "day" in step or "at" in step:
            return None, ["give either hours or day+at, not both"]
        if not isinstance(hours, int | float) or isinstance(hours, bool) or hours <= 0:
            return None, ["hours must be a positive number"]
        return float(hours), []
    day, at = step.get("day"), step.get("at")
    if not isinstance(day, int) or isinstance(day, bool) or day < 0:
        return None, ["needs hours, or day (a whole number ≥ 0) with at"]
    try:
        clock = time.fromisoformat(at) if isinstance(at, str) and len(at) == 5 else None
    except ValueError:
        clock = None
    if clock is None:
        return None, ["at must be a local time HH:MM"]
    return day * 24 + clock.hour + clock.minute / 60, []


def _localized_errors(text: Any) -> list[str]:
    if not isinstance(text, dict):
        return [f"text must give {' and '.join(LANGS)}"]
    errors = [f"missing {lang} text" for lang in LANGS if not isinstance(text.get(lang), str)]
    for lang, value in text.items():
        if not isinstance(value, str):
            continue
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            errors.append(f"{lang} text: {exc}")
            continue
        unknown = names - PLACEHOLDERS
        if unknown:
            errors.append(f"{lang} text: unknown placeholder {{{sorted(unknown)[0]}}}")
    return errors


def _trigger_errors(triggers: Any, ids: set[str]) -> list[str]:
    if not isinstance(triggers, dict):
        return ["must map triage levels and enrollment to programme ids"]
    errors = [f"unknown trigger {name!r}" for name in triggers if name not in TRIGGERS]
    if "enrollment" not in triggers:
        errors.append("needs the enrollment programme (enrollment: <programme id>)")
    unknown = [f"{level}: unknown programme {pid!r}" for level, pid in triggers.items() if pid not in ids]
    return errors + unknown


def _answer_errors(answers: Any) -> list[str]:
    if not isinstance(answers, dict) or set(answers) != set(OUTCOMES):
        return [f"must list phrases for exactly {', '.join(OUTCOMES)}"]
    seen: dict[str, str] = {}
    errors: list[str] = []
    for outcome, phrases in answers.items():
        if not isinstance(phrases, list) or not phrases:
            errors.append(f"{outcome}: must be a non-empty list")
            continue
        for phrase in phrases:
            key = normalise_answer(str(phrase))
            if not key:
                errors.append(f"{outcome}: {phrase!r} is empty once punctuation is dropped")
            elif seen.setdefault(key, outcome) != outcome:
                errors.append(f"{outcome}: {phrase!r} is also listed under {seen[key]}")
    return errors


def _length_errors(data: dict[str, Any], texts: dict[str, Any]) -> list[tuple[str, str]]:
    """Rendered messages that would cost more than MAX_SEGMENTS segments."""
    candidates: list[tuple[str, Any]] = [("texts.last_message", texts.get("last_message"))]
    candidates += [(f"replies.{name}", value) for name, value in data["replies"].items()]
    footer = texts.get("footer") if isinstance(texts.get("footer"), dict) else {}
    for programme in data.get("programmes") or []:
        if not isinstance(programme, dict):
            continue
        for number, step in enumerate(programme.get("steps") or [], start=1):
            text = step.get("text", programme.get("text")) if isinstance(step, dict) else None
            if isinstance(text, dict):
                joined = {lang: f"{value} {footer.get(lang, '')}" for lang, value in text.items()}
                candidates.append((f"{programme.get('id')}: step {number}", joined))
    errors = []
    for where, text in candidates:
        if not isinstance(text, dict) or _localized_errors(text):
            continue  # reported above
        for lang, value in text.items():
            segments = count_segments(value.format(**SAMPLE_VALUES))
            if segments > MAX_SEGMENTS:
                errors.append((where, f"{lang} text needs {segments} SMS segments (max {MAX_SEGMENTS})"))
    return errors


def _build(data: dict[str, Any]) -> Programmes:
    programmes = {}
    for raw in data["programmes"]:
        steps = tuple(
            Step(
                number=number,
                text=step.get("text", raw.get("text")),
                day=step.get("day"),
                at=time.fromisoformat(step["at"]) if "at" in step else None,
                hours=step.get("hours"),
            )
            for number, step in enumerate(raw["steps"], start=1)
        )
        programmes[raw["id"]] = Programme(id=raw["id"], steps=steps, anchor=raw.get("anchor", "event"))
    answers = {
        normalise_answer(str(phrase)): outcome
        for outcome, phrases in data["answers"].items()
        for phrase in phrases
    }
    return Programmes(
        programmes=programmes,
        triggers=dict(data["triggers"]),
        answers=answers,
        texts={name: data["texts"][name] for name in SHARED_TEXTS},
        replies={outcome: data["replies"][outcome] for outcome in OUTCOMES},
    )
