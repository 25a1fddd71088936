"""Every text smsbot sends, at its longest, for ``smsbot rules check``: what each costs in
SMS segments, and whether it keeps to GSM-7 and to the house spelling of Spanish.

A reply is rendered with the longest emergency number a deployment may set, the longest
baby's name the check-ins plan for, and each red-flag reason its level can carry. One
character outside GSM-7 ("á", a curly quote) turns a message into UCS-2, which fits 70
characters a segment instead of 160; GSM-7 has "é" and "ñ" but no "á", "í", "ó" or "ú", so
Spanish is written without accents on vowels throughout, "é" included, to read the same in
every text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from smsbot.checkins.programmes import SAMPLE_VALUES, load_programmes
from smsbot.clinics.texts import load_clinic_texts
from smsbot.conversation.keywords import load_keywords
from smsbot.messaging.segments import count_segments, is_gsm7
from smsbot.triage.model import RuleSet
from smsbot.vocabulary import LONGEST_NUMBER, MAX_SEGMENTS

ACCENTED_VOWELS = frozenset("áéíóúÁÉÍÓÚ")
FIRST_SEGMENT = 160  # an emergency reply's action and number must be readable in the first SMS
SAMPLE_CLINIC = "Riverside Pediatrics of the Valley"  # a long clinic name
SAMPLE_LINK = "https://smsbot.example.org/dashboard/families/123456"


@dataclass(frozen=True)
class SentText:
    """One text smsbot sends, in one language, at its costliest variant."""

    name: str  # where it is written: "replies.emergency.en", "checkins.after_routine.1.es"
    variants: int  # how many renderings were measured (one per red-flag reason, answer...)
    segments: int  # SMS segments of the costliest one
    chars: int
    problems: tuple[str, ...]


def catalogue(rules_dir: Path, ruleset: RuleSet) -> list[SentText]:
    """Every text of ``rules_dir`` measured, in file order."""
    return [_measure(name, lang, texts) for name, lang, texts in _texts(rules_dir, ruleset)]


def _measure(name: str, lang: str, variants: list[str]) -> SentText:
    worst = max(variants, key=count_segments)
    problems = []
    if (segments := count_segments(worst)) > MAX_SEGMENTS:
        problems.append(f"{segments} SMS segments, over {MAX_SEGMENTS}: {worst[:60]!r}...")
    if outside := sorted({ch for text in variants for ch in text if not is_gsm7(ch)}):
        problems.append(f"not GSM-7: {''.join(outside)!r}")
    if lang == "es" and (accents := sorted({ch for text in variants for ch in text} & ACCENTED_VOWELS)):
        problems.append(f"Spanish is written without accented vowels: {''.join(accents)!r}")
    if name == "replies.emergency" and any(LONGEST_NUMBER not in text[:FIRST_SEGMENT] for text in variants):
        problems.append(f"the emergency number must come within the first {FIRST_SEGMENT} characters")
    return SentText(f"{name}.{lang}", len(variants), segments, len(worst), tuple(problems))


def _fill(template: str, **values: str) -> str:
    return " ".join(template.format(**values).split())


def _texts(rules_dir: Path, ruleset: RuleSet) -> Iterator[tuple[str, str, list[str]]]:
    """(name, language, every rendering) of each text smsbot sends."""
    number = LONGEST_NUMBER
    for level, templates in ruleset.replies.items():
        for lang, template in templates.items():
            baby = SAMPLE_VALUES["baby"]
            reasons = [r.reason[lang] for r in ruleset.rules if r.level == level and r.reason] or [""]
            answers = (
                [ruleset.menu[lang], *(t.answer[lang] for t in ruleset.topics)] if level == "info" else [""]
            )
            variants = [
                _fill(
                    template,
                    emergency_number=number,
                    reason=reason,
                    baby=baby,
                    answer=_fill(answer, emergency_number=number),
                )
                for reason in reasons
                for answer in answers
            ]
            yield f"replies.{level}", lang, variants
    for name, texts in load_keywords(rules_dir).replies.items():
        for lang, text in texts.items():
            yield f"keywords.{name}", lang, [_fill(text, emergency_number=number, reason="")]
    programmes = load_programmes(rules_dir)
    for name in ("last_message",):
        for lang, text in programmes.texts[name].items():
            yield f"checkins.{name}", lang, [_fill(text, baby=SAMPLE_VALUES["baby"], emergency_number=number)]
    for outcome, texts in programmes.replies.items():
        for lang, text in texts.items():
            yield (
                f"checkins.replies.{outcome}",
                lang,
                [_fill(text, baby=SAMPLE_VALUES["baby"], emergency_number=number)],
            )
    for programme in programmes.programmes.values():
        for step in programme.steps:
            for lang, text in programmes.checkin_text(step).items():
                rendered = _fill(text, baby=SAMPLE_VALUES["baby"], emergency_number=number)
                yield f"checkins.{programme.id}.{step.number}", lang, [rendered]
    clinic = load_clinic_texts(rules_dir)
    values = {"clinic": SAMPLE_CLINIC, "emergency_number": number, "level": "emergency", "link": SAMPLE_LINK}
    for name, texts in clinic.replies.items():
        for lang, text in texts.items():
            if "{text}" in text:
                # A staff text: the clinic's signature around each quick reply staff can send.
                quick = [q[lang] for _label, q in clinic.quick_replies.values() if lang in q] or [""]
                variants = [
                    _fill(
                        text,
                        baby=SAMPLE_VALUES["baby"],
                        **values,
                        text=_fill(q, baby=SAMPLE_VALUES["baby"], **values),
                    )
                    for q in quick
                ]
                yield f"clinic.{name}", lang, variants
            else:
                yield f"clinic.{name}", lang, [_fill(text, baby=SAMPLE_VALUES["baby"], **values)]
