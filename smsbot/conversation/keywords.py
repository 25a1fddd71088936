"""Compliance keywords (STOP / START / HELP), plain-word opt-outs and fixed service replies
from ``rules/``.

A keyword counts only when it is the whole message, so "please stop the shaking" stays
a symptom report. A plain-word opt-out ("stop texting me", "ya no me manden mensajes") is
a phrase about the messages found anywhere in a text; a text that only talks about stopping
the messages ("how do I stop these?") is told how to.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from smsbot.messaging.segments import count_segments
from smsbot.vocabulary import LANGS, LONGEST_NUMBER, MAX_SEGMENTS

ACTIONS = ("stop", "start", "help")
HOW_TO_STOP = "how_to_stop"
# Sensitive news (``smsbot.conversation.news``): a loss, a baby in hospital, a baby home again.
NEWS_REPLIES = ("news_loss", "news_hospital", "news_home")
REPLY_NAMES = (*ACTIONS, "media", "empty", "error", HOW_TO_STOP, *NEWS_REPLIES)
# Phrase lists of the plain-word opt-outs, each {en: [...], es: [...]}.
OPT_OUT_LISTS = ("phrases", "not_after", "changes", "about_messages", "stop_words", "message_words")
NOT_AFTER_REACH = 5  # words before a phrase that a negation or a question is looked for in
NEAR = 4  # a stop word this many words or fewer from a word for the messages talks about them
# What each example list of ``opt_out.examples`` must be read as (None: neither).
EXAMPLE_READINGS = {"stop": "stop", "how_to_stop": HOW_TO_STOP, "neither": None}
_WORD = re.compile(r"[a-z0-9]+|[.,;:!?()]")
_APOSTROPHE = re.compile(r"(?<=[a-z])['’`´](?=[a-z])")
Words = tuple[str, ...]


def squash(text: str) -> str:
    """Upper-case letters and digits only, accents removed: 'Opt-out!' → 'OPTOUT'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isalnum()).upper()


def words(text: str) -> Words:
    """Lower-case words, accents and in-word apostrophes removed ("don't" → "dont"), with
    punctuation kept as its own token: it ends a phrase and a negation's reach."""
    decomposed = unicodedata.normalize("NFKD", _APOSTROPHE.sub("", text.lower()))
    return tuple(_WORD.findall("".join(ch for ch in decomposed if not unicodedata.combining(ch))))


@dataclass(frozen=True)
class KeywordMatch:
    action: str  # stop | start | help; how_to_stop for a text that only talks about stopping
    lang: str
    whole: bool = True  # the whole message is the keyword; False: a plain-word request in a text


@dataclass(frozen=True)
class PhraseIndex:
    """Word phrases looked up by their first word: one dictionary probe per word of a text."""

    by_first: dict[str, tuple[tuple[Words, str], ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, phrases: Iterable[tuple[Words, str]]) -> PhraseIndex:
        by_first: dict[str, list[tuple[Words, str]]] = {}
        for phrase, lang in phrases:
            by_first.setdefault(phrase[0], []).append((phrase, lang))
        return cls({first: tuple(found) for first, found in by_first.items()})

    def find(self, tokens: Words) -> list[tuple[int, Words, str]]:
        """Every (position, phrase, language) found in ``tokens``."""
        return [
            (i, phrase, lang)
            for i, token in enumerate(tokens)
            for phrase, lang in self.by_first.get(token, ())
            if tokens[i : i + len(phrase)] == phrase
        ]


@dataclass(frozen=True)
class Keywords:
    by_word: dict[str, KeywordMatch]
    replies: dict[str, dict[str, str]]
    opt_out_phrases: PhraseIndex = field(default_factory=PhraseIndex)
    not_after: PhraseIndex = field(default_factory=PhraseIndex)
    changes: PhraseIndex = field(default_factory=PhraseIndex)
    about_messages: PhraseIndex = field(default_factory=PhraseIndex)
    stop_words: PhraseIndex = field(default_factory=PhraseIndex)
    message_words: PhraseIndex = field(default_factory=PhraseIndex)

    def match(self, text: str) -> KeywordMatch | None:
        """The action when the whole message is a keyword, else None."""
        return self.by_word.get(squash(text)) if len(text) <= 40 else None

    def plain_opt_out(self, text: str) -> KeywordMatch | None:
        """A request to stop the messages in plain words, anywhere in ``text``.

        ``stop`` for a clear request; ``how_to_stop`` when the text talks about stopping the
        messages without clearly asking (a how-question, a negated request such as "please
        don't stop texting me", or one that only wants them changed: "stop texting me at
        night"); None when it does not talk about the messages at all ("please stop the
        shaking").
        """
        tokens = words(text)
        found = self.opt_out_phrases.find(tokens)
        clear = [lang for start, _, lang in found if not self._qualified(tokens, start)]
        if clear and not self.changes.find(tokens):
            return KeywordMatch("stop", clear[0], whole=False)
        talk = found or self.about_messages.find(tokens)
        talk = talk or self._near(tokens, self.stop_words.find(tokens), self.message_words.find(tokens))
        return KeywordMatch(HOW_TO_STOP, talk[0][2], whole=False) if talk else None

    @staticmethod
    def _near(
        tokens: Words, stops: list[tuple[int, Words, str]], subjects: list[tuple[int, Words, str]]
    ) -> list[tuple[int, Words, str]]:
        """The stop words within NEAR words of a word for the messages, in the same clause."""
        return [
            stop
            for stop in stops
            for subject in subjects
            if abs(stop[0] - subject[0]) <= NEAR
            and all(t[0].isalnum() for t in tokens[min(stop[0], subject[0]) : max(stop[0], subject[0])])
        ]

    def opting_out(self, text: str) -> bool:
        """Whether ``text`` is a STOP, as a keyword or in plain words."""
        found = self.match(text.strip()) or self.plain_opt_out(text)
        return found is not None and found.action == "stop"

    def _qualified(self, tokens: Words, start: int) -> bool:
        """A negation or a how-question in the few words before ``start``, not across punctuation."""
        window: list[str] = []
        for token in reversed(tokens[max(start - NOT_AFTER_REACH, 0) : start]):
            if not token[0].isalnum():
                break
            window.insert(0, token)
        return bool(self.not_after.find(tuple(window)))

    def reply(self, name: str, lang: str, **values: str) -> str:
        texts = self.replies[name]
        return texts.get(lang, texts["en"]).format(**values)


def validate_keywords_file(path: Path, data: dict[str, Any]) -> list[str]:
    """Schema errors for a ``kind: keywords`` file, each naming the file and field; then the
    plain-word opt-out examples, each read as its list says."""
    errors = _schema_errors(path, data)
    if errors:
        return errors
    keywords = parse_keywords(path, data)
    for name, expected in EXAMPLE_READINGS.items():
        for text in data["opt_out"]["examples"].get(name) or ():
            found = keywords.match(text.strip()) or keywords.plain_opt_out(text)
            got = found.action if found is not None else None
            if got != expected:
                errors.append(f"{path}: opt_out.examples.{name}: {text!r} is read as {got or 'neither'}")
    return errors


def _schema_errors(path: Path, data: dict[str, Any]) -> list[str]:
    errors = []
    keywords = data.get("keywords")
    if not isinstance(keywords, dict):
        return [f"{path}: keywords: missing mapping"]
    seen: dict[str, str] = {}
    for action, lang, listed in _word_lists(path, "keywords", keywords, ACTIONS, errors):
        for word in listed:
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
            elif (segments := count_segments(text.format(emergency_number=LONGEST_NUMBER))) > MAX_SEGMENTS:
                errors.append(f"{path}: replies.{name}.{lang}: {segments} SMS segments, over {MAX_SEGMENTS}")
    opt_out = data.get("opt_out")
    if not isinstance(opt_out, dict):
        return [*errors, f"{path}: opt_out: missing mapping"]
    for name, lang, listed in _word_lists(path, "opt_out", opt_out, OPT_OUT_LISTS, errors):
        for phrase in listed:
            found = words(str(phrase))
            if not found or not all(token[0].isalnum() for token in found):
                errors.append(f"{path}: opt_out.{name}.{lang}: {phrase!r} must be words only")
    examples = opt_out.get("examples")
    if not isinstance(examples, dict) or set(examples) - set(EXAMPLE_READINGS):
        errors.append(f"{path}: opt_out.examples: must map {', '.join(EXAMPLE_READINGS)} to lists of texts")
    elif not all(
        isinstance(texts, list) and all(isinstance(t, str) for t in texts) for texts in examples.values()
    ):
        errors.append(f"{path}: opt_out.examples: each must be a list of texts")
    return errors


def _word_lists(
    path: Path, section: str, table: dict[str, Any], names: tuple[str, ...], errors: list[str]
) -> list[tuple[str, str, list[Any]]]:
    """Each ``table[name][lang]`` that is a non-empty list; an error in ``errors`` for each other."""
    found = []
    for name in names:
        for lang in LANGS:
            listed = (table.get(name) or {}).get(lang)
            if isinstance(listed, list) and listed:
                found.append((name, lang, listed))
            else:
                errors.append(f"{path}: {section}.{name}.{lang}: must be a non-empty list")
    return found


def parse_keywords(path: Path, data: dict[str, Any]) -> Keywords:
    errors = _schema_errors(path, data)
    if errors:
        raise ValueError(errors[0])
    by_word: dict[str, KeywordMatch] = {}
    for action in ACTIONS:
        for lang in LANGS:
            for word in data["keywords"][action][lang]:
                # The first language listing a shared word ("MENU") wins.
                by_word.setdefault(squash(str(word)), KeywordMatch(action, lang))
    opt_out = data["opt_out"]
    lists = {
        name: PhraseIndex.of((words(str(p)), lang) for lang in LANGS for p in opt_out[name][lang])
        for name in OPT_OUT_LISTS
    }
    return Keywords(
        by_word=by_word,
        replies=data["replies"],
        opt_out_phrases=lists["phrases"],
        not_after=lists["not_after"],
        changes=lists["changes"],
        about_messages=lists["about_messages"],
        stop_words=lists["stop_words"],
        message_words=lists["message_words"],
    )


@lru_cache(maxsize=8)
def load_keywords(rules_dir: Path) -> Keywords:
    path = rules_dir / "keywords.yaml"
    with path.open(encoding="utf-8") as handle:
        return parse_keywords(path, yaml.safe_load(handle))
