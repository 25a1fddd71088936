"""Texts sent on behalf of a clinic (consent request and its confirmation, on-call alert,
staff texts and their quick replies), from ``rules/clinic.yaml``
(``kind: clinic``), parsed through the one rule-file layer.

Wording is reviewed with the clinical content, so it lives in the rules directory, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from smsbot.rulefiles import RULE_FILE, RuleFileError, Text, Texts, parse, parse_one
from smsbot.vocabulary import DEFAULT_LANG

FILENAME = "clinic.yaml"


class _Part(BaseModel):
    model_config = RULE_FILE


class ClinicReplies(_Part):
    consent: Texts  # sent once on enrolling; placeholders {clinic}, {baby}
    consent_given: Texts  # the reply to the YES that consented; also {emergency_number}
    oncall_alert: Texts  # to the clinic's on-call phone: {level}, {clinic}, {link}
    staff_message: Texts  # a text staff wrote: {clinic}, {text}


class QuickReply(_Part):
    label: Text  # what the button says to staff
    text: Texts  # {baby}, {emergency_number}


class ClinicFixedTexts(_Part):
    baby: Texts  # "your baby", when the clinic gave no name


class ClinicFile(_Part):
    kind: Literal["clinic"]
    replies: ClinicReplies
    texts: ClinicFixedTexts
    quick_replies: dict[str, QuickReply] = {}


@dataclass(frozen=True)
class ClinicTexts:
    replies: dict[str, dict[str, str]]
    texts: dict[str, dict[str, str]]
    quick_replies: dict[str, tuple[str, dict[str, str]]]  # id → (label, text per language)

    def quick_reply(self, name: str, lang: str, **values: str) -> str:
        """A quick reply's text in ``lang`` (KeyError for an unknown one)."""
        texts = self.quick_replies[name][1]
        return texts.get(lang, texts[DEFAULT_LANG]).format(**values)

    def render(self, name: str, lang: str, **values: str) -> str:
        """Fill a reply's placeholders in ``lang`` (English when that language has no text)."""
        texts = self.replies[name]
        return texts.get(lang, texts[DEFAULT_LANG]).format(**values)

    def baby(self, name: str | None, lang: str) -> str:
        """The baby's name, or "your baby" in the family's language."""
        fallback = self.texts["baby"]
        return name or fallback.get(lang, fallback[DEFAULT_LANG])


def check_file(path: Path, data: dict[str, Any]) -> list[RuleFileError]:
    """Every problem of a ``kind: clinic`` file, each naming the file, line and field."""
    return parse(path, data, ClinicFile)[1]


@lru_cache(maxsize=8)
def load_clinic_texts(rules_dir: Path) -> ClinicTexts:
    """Parse ``<rules_dir>/clinic.yaml`` once per directory (a RuleFileError if it is wrong)."""
    parsed = parse_one(Path(rules_dir) / FILENAME, ClinicFile)
    return ClinicTexts(
        replies=parsed.replies.model_dump(),
        texts=parsed.texts.model_dump(),
        quick_replies={name: (q.label, q.text.model_dump()) for name, q in parsed.quick_replies.items()},
    )
