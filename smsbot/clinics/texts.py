"""Texts sent on behalf of a clinic (consent request and its confirmation, on-call alert),
from ``rules/clinic.yaml``.

Wording is reviewed with the clinical content, so it lives in the rules directory, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from smsbot.vocabulary import LANGS

FILENAME = "clinic.yaml"
REPLY_NAMES = ("consent", "consent_given", "oncall_alert")
TEXT_NAMES = ("baby",)


class ClinicTextsError(ValueError):
    """``clinic.yaml`` is malformed; the message names the file and field."""


@dataclass(frozen=True)
class ClinicTexts:
    replies: dict[str, dict[str, str]]
    texts: dict[str, dict[str, str]]

    def render(self, name: str, lang: str, **values: str) -> str:
        """Fill a reply's placeholders in ``lang`` (English when that language has no text)."""
        texts = self.replies[name]
        return texts.get(lang, texts["en"]).format(**values)

    def baby(self, name: str | None, lang: str) -> str:
        """The baby's name, or "your baby" in the family's language."""
        fallback = self.texts["baby"]
        return name or fallback.get(lang, fallback["en"])


def validate_clinic_file(path: Path, data: Any) -> list[str]:
    """Schema errors for a ``kind: clinic`` file, each naming the file and field."""
    if not isinstance(data, dict):
        return [f"{path}: expected a mapping"]
    errors = []
    for section, names in (("replies", REPLY_NAMES), ("texts", TEXT_NAMES)):
        entries = data.get(section) or {}
        for name in names:
            for lang in LANGS:
                text = (entries.get(name) or {}).get(lang) if isinstance(entries, dict) else None
                if not isinstance(text, str) or not text.strip():
                    errors.append(f"{path}: {section}.{name}.{lang}: missing text")
    return errors


@lru_cache(maxsize=8)
def load_clinic_texts(rules_dir: Path) -> ClinicTexts:
    """Parse and validate ``<rules_dir>/clinic.yaml`` once per directory."""
    path = Path(rules_dir) / FILENAME
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = validate_clinic_file(path, data)
    if errors:
        raise ClinicTextsError("\n".join(errors))
    return ClinicTexts(replies=data["replies"], texts=data["texts"])
