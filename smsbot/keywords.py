"""Compliance keywords (STOP / START / HELP) and fixed service replies from ``rules/``.

A keyword counts only when it is the whole message, so "please stop the shaking" stays
a symptom report.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from smsbot.rulefiles import register

ACTIONS = ("stop", "start", "help")
REPLY_NAMES = (*ACTIONS, "media", "empty", "error")
LANGS = ("en", "es")


def squash(text: str) -> str:
    """Upper-case letters and digits only, accents removed: 'Opt-out!' → 'OPTOUT'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isalnum()).upper()


@dataclass(frozen=True)
class KeywordMatch:
    action: str  # stop | start | help
    lang: str


@dataclass(frozen=True)
class Keywords:
    by_word: dict[str, KeywordMatch]
    replies: dict[str, dict[str, str]]

    def match(self, text: str) -> KeywordMatch | None:
        """The action when the whole message is a keyword, else None."""
        return self.by_word.get(squash(text)) if len(text) <= 40 else None

    def reply(self, name: str, lang: str, **values: str) -> str:
        texts = self.replies[name]
        return texts.get(lang, texts["en"]).format(**values)


@register("keywords")
def validate_keywords_file(path: Path, data: dict[str, Any]) -> list[str]:
    """Schema errors for a ``kind: keywords`` file, each naming the file and field."""
    errors = []
    keywords = data.get("keywords")
    if not isinstance(keywords, dict):
        return [f"{path}: keywords: missing mapping"]
    seen: dict[str, str] = {}
    for action in ACTIONS:
        for lang in LANGS:
            words = (keywords.get(action) or {}).get(lang)
            if not isinstance(words, list) or not words:
                errors.append(f"{path}: keywords.{action}.{lang}: must be a non-empty list")
                continue
            for word in words:
                key = squash(str(word))
                if seen.get(key, action) != action:
                    errors.append(f"{path}: keywords.{action}.{lang}: {word!r} is also a {seen[key]}")
                seen[key] = action
    replies = data.get("replies") or {}
    for name in REPLY_NAMES:
        for lang in LANGS:
            text = (replies.get(name) or {}).get(lang)
            if not isinstance(text, str) or not text.strip():
                errors.append(f"{path}: replies.{name}.{lang}: missing text")
    return errors


def parse_keywords(path: Path, data: dict[str, Any]) -> Keywords:
    errors = validate_keywords_file(path, data)
    if errors:
        raise ValueError(errors[0])
    by_word: dict[str, KeywordMatch] = {}
    for action in ACTIONS:
        for lang in LANGS:
            for word in data["keywords"][action][lang]:
                # The first language listing a shared word ("MENU") wins.
                by_word.setdefault(squash(str(word)), KeywordMatch(action, lang))
    return Keywords(by_word=by_word, replies=data["replies"])


@lru_cache(maxsize=8)
def load_keywords(rules_dir: Path) -> Keywords:
    path = rules_dir / "keywords.yaml"
    with path.open(encoding="utf-8") as handle:
        return parse_keywords(path, yaml.safe_load(handle))
